import { createServer, type Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueCertificate, type CertifiedKey } from '../../agent/controller/clusters/pki.ts';
import { ControllerTransport, NodeClient } from '../../agent/protocol/client.ts';
import { freePort } from '../../scripts/free-port.ts';

/**
 * The node client of a controller with several replicas (etcd backend): scripted HTTPS
 * "replicas", each counting the requests that reach it.
 */

let ca: CertifiedKey;
let serving: CertifiedKey;
const servers: Server[] = [];

beforeAll(async () => {
  ca = await createCa('test-controller-ca');
  serving = await issueCertificate(ca, { commonName: 'controller', altNames: ['127.0.0.1'], usage: 'server', validDays: 1 });
});

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

const STATUS = {
  cluster: {
    id: 'demo-abcde',
    name: 'demo',
    kubernetesVersion: '1.31.2',
    endpoint: '10.0.0.1:6443',
    controlPlaneNodes: 3,
    virtualRouterId: 7,
  },
  leader: { epoch: 0, initialized: false },
  nodes: [],
};

/** A replica answering `status` (or 503 while `down()`), with the count of requests it got. */
async function replica(down: () => boolean = () => false): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res: ServerResponse) => {
    hits += 1;
    req.resume();
    req.on('end', () => {
      const [status, body] = down() ? [503, { error: { code: 'store-unavailable', message: 'etcd has no quorum' } }] : [200, STATUS];
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

function client(url: string, otherUrls: string[]): NodeClient {
  return new NodeClient(
    new ControllerTransport({ url, otherUrls, caCert: ca.certPem, token: 'a.b.c', retry: { retries: 4, minDelayMs: 10, maxDelayMs: 50 } }),
    'demo-abcde',
    'w1',
  );
}

describe('controller client with replicas', () => {
  it('moves on from a replica that does not answer and sticks to the one that does', async () => {
    const dead = `https://127.0.0.1:${await freePort()}`;
    const live = await replica();
    const c = client(dead, [live.url]);
    await c.status();
    await c.status();
    await c.status();
    // The first call failed once on the dead one; every later call went straight to the live one.
    expect(live.hits()).toBe(3);
    await c.close();
  });

  it('moves on after a 5xx, and comes round to the first replica again when the others fail', async () => {
    let firstDown = true;
    const first = await replica(() => firstDown);
    const second = await replica(() => !firstDown);
    const c = client(first.url, [second.url]);
    await c.status();
    expect([first.hits(), second.hits()]).toEqual([1, 1]);
    firstDown = false;
    await c.status();
    expect([first.hits(), second.hits()]).toEqual([2, 2]);
    await c.close();
  });
});
