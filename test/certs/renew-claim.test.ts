import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RENEWAL_JOURNAL, renewCertificates, type CertificatesReporter } from '../../agent/certs/renew.ts';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import { createLogger } from '../../agent/core/log.ts';
import { Host } from '../../agent/host/host.ts';
import { CLUSTER_CA_CERT } from '../../agent/kube/paths.ts';
import { CONTROL_PLANE_PODS } from '../../agent/kube/static-pods.ts';
import { createNodeClient } from '../../agent/protocol/client.ts';
import { scratchDir } from '../helpers/cli.ts';
import {
  NO_RETRY,
  addNode,
  type ClusterApiStandin,
  createLocalCluster,
  initializedLeader,
  startTestController,
  type TestController,
  type TestNode,
} from '../controller/helpers.ts';

/**
 * `pke-agent certs renew` and the controller's renewal claim, against a real test controller: a
 * node due for renewal while another control-plane node holds the claim does not renew (and says
 * whom it waits for); a run resumed from its journal goes on without asking; a controller that
 * cannot be reached does not stop a renewal. The node is a scratch root whose PATH holds no
 * kubeadm: a run that got past the claim fails there, before anything on this machine is touched.
 */

const DAY_MS = 86_400_000;
let t: TestController;
let cluster: string;
let m1: TestNode;
let m2: TestNode;
let api: ClusterApiStandin;
let ca: Awaited<ReturnType<typeof createCa>>;
const scratch = scratchDir('renew-claim');
const closing: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  t = await startTestController();
  cluster = (await createLocalCluster(t.admin)).id;
  m1 = await addNode(t.admin, cluster, 'm1', 'master');
  m2 = await addNode(t.admin, cluster, 'm2', 'master');
  api = (await initializedLeader(m1)).api;
  await m2.client.join({});
  await m2.client.joined({});
  ca = await createCa('kubernetes');
}, 60_000);

afterAll(async () => {
  for (const item of closing.reverse()) await item.close();
  await Promise.all([m1?.client.close(), m2?.client.close(), api?.close()]);
  await t?.close();
  scratch.remove();
});

let nodes = 0;
/** A control-plane node's root whose certificates expire in 10 days, and whose PATH is an empty directory. */
async function dueNode(): Promise<{ host: Host; logged: string[]; log: ReturnType<typeof createLogger> }> {
  const root = path.join(scratch.dir, `node-${++nodes}`);
  const bin = path.join(root, 'empty-bin');
  mkdirSync(bin, { recursive: true });
  const host = new Host({ root, path: bin });
  await host.writeFile(CLUSTER_CA_CERT, ca.certPem);
  const leaf = await issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'server-and-client', validDays: 10 });
  await host.writeFile('/etc/kubernetes/pki/apiserver.crt', leaf.certPem);
  const logged: string[] = [];
  return { host, logged, log: createLogger({ json: true, level: 'debug', write: (line) => logged.push(line) }) };
}

/** The node's controller client, recording which calls it made. */
function recorded(client: CertificatesReporter): { reporter: CertificatesReporter; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    reporter: {
      events: (request) => {
        calls.push('events');
        return client.events(request);
      },
      reportCertificates: (report) => {
        calls.push('reportCertificates');
        return client.reportCertificates(report);
      },
      claimRenewal: () => {
        calls.push('claimRenewal');
        return client.claimRenewal();
      },
    },
  };
}

const endpoint = { vip: '127.0.0.1', port: 1 };

describe('certs renew and the renewal claim', () => {
  it('does not renew while another control-plane node holds the claim, forced or not, and says whom it waits for', async () => {
    const held = await m1.client.claimRenewal();
    expect(held.granted).toBe(true);
    for (const force of [false, true]) {
      const { host, log, logged } = await dueNode();
      const { reporter, calls } = recorded(m2.client);
      const result = await renewCertificates({ host, log, withinDays: 90, force, endpoint, reporter });
      expect(result).toMatchObject({
        renewed: false,
        reason: `control-plane node m1 is renewing until ${held.expiresAt}; this node renews on its next run`,
      });
      expect(calls).toEqual(['claimRenewal', 'reportCertificates']);
      expect(await host.exists(RENEWAL_JOURNAL)).toBe(false);
      expect(logged.join('\n')).not.toMatch(/certs\.renewing/);
    }
    // The expiry dates reached the controller all the same.
    const m2Status = (await t.admin.status(cluster)).nodes.find((n) => n.name === 'm2');
    expect(m2Status?.certificatesExpireAt).toBeDefined();
  });

  it('goes on with a renewal its journal says is in progress, without asking for the claim another node holds', async () => {
    expect(await m2.client.claimRenewal()).toMatchObject({ granted: false, holder: 'm1' });
    const { host, log } = await dueNode();
    // Renewed, every static pod restarted, stopped before it wrote that it was done.
    await host.writeFile(
      RENEWAL_JOURNAL,
      JSON.stringify({
        startedAt: new Date(Date.now() - 60_000).toISOString(),
        before: [{ name: 'apiserver.crt', notAfter: new Date(Date.now() + 5 * DAY_MS).toISOString() }],
        renewedAt: new Date(Date.now() - 50_000).toISOString(),
        restarted: CONTROL_PLANE_PODS.map((p) => p.name),
      }),
    );
    const live = await livezServer();
    const { reporter, calls } = recorded(m2.client);
    const result = await renewCertificates({ host, log, withinDays: 90, force: false, endpoint: live.endpoint, reporter });
    expect(result.renewed).toBe(true);
    expect(calls).not.toContain('claimRenewal');
    expect(calls).toContain('reportCertificates');
    // m2 held no claim: its report leaves m1's in place.
    expect(await m2.client.claimRenewal()).toMatchObject({ granted: false, holder: 'm1' });
  });

  it('renews without the claim when the controller cannot be reached, and says so', async () => {
    const { host, log, logged } = await dueNode();
    const unreachable = createNodeClient(
      { ...m2.config, controller: { ...m2.config.controller, url: `https://127.0.0.1:${await closedPort()}` } },
      { retry: NO_RETRY },
    );
    closing.push(unreachable);
    const run = renewCertificates({ host, log, withinDays: 90, force: false, endpoint, reporter: unreachable });
    // The run went past the claim to kubeadm, which this node does not have.
    await expect(run).rejects.toThrow(/kubeadm.*was not found on PATH/);
    expect(logged.join('\n')).toMatch(/certs\.renew\.unclaimed.*renewing without the claim/);
    expect(JSON.parse((await host.readText(RENEWAL_JOURNAL)) ?? '{}')).toMatchObject({ startedAt: expect.any(String) });
  });
});

/** An HTTPS /livez on loopback whose certificate the node's cluster CA signed: the endpoint a renewal waits for. */
async function livezServer(): Promise<{ endpoint: { vip: string; port: number } }> {
  const serving = await issueCertificate(ca, {
    commonName: 'kube-apiserver',
    usage: 'server-and-client',
    validDays: 1,
    altNames: ['127.0.0.1'],
  });
  const server: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (_, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closing.push({ close: () => new Promise((resolve) => server.close(resolve)) });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the /livez server has no port');
  return { endpoint: { vip: '127.0.0.1', port: address.port } };
}

/** A loopback port nothing listens on (taken and given back at once). */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
