import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../agent/core/log.ts';
import { createCa, issueCertificate, type CertifiedKey } from '../../agent/controller/clusters/pki.ts';
import { API, routePath } from '../../agent/protocol/routes.ts';
import { ControllerTransport, NodeClient } from '../../agent/protocol/client.ts';
import { ControllerRequestError } from '../../agent/protocol/errors.ts';

/**
 * The client against a scripted HTTPS server: each test says what the "controller" answers,
 * and the server counts the requests that reach it.
 */

const TOKEN = 'header.payload.signature-that-must-never-be-logged';
let ca: CertifiedKey;
let otherCa: CertifiedKey;
let serving: CertifiedKey;
let server: Server | undefined;
let requests: { method?: string; url?: string; authorization?: string }[] = [];

beforeAll(async () => {
  [ca, otherCa] = await Promise.all([createCa('test-controller-ca'), createCa('someone-else')]);
  serving = await issueCertificate(ca, { commonName: 'controller', altNames: ['127.0.0.1'], usage: 'server', validDays: 1 });
});

afterEach(async () => {
  await new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  server = undefined;
  requests = [];
});

async function serve(answer: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<string> {
  server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    requests.push({ method: req.method, url: req.url, authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => answer(req, res, requests.length));
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', () => resolve()));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const fast = { retries: 4, minDelayMs: 10, maxDelayMs: 50 };

function client(url: string, options: { caCert?: string; log?: (line: string) => void } = {}): NodeClient {
  const log = createLogger({ json: true, level: 'debug', write: options.log ?? (() => {}) });
  return new NodeClient(
    new ControllerTransport({ url, caCert: options.caCert ?? ca.certPem, token: TOKEN, retry: fast, log }),
    'demo-abcde',
    'w1',
  );
}

async function failure(promise: Promise<unknown>): Promise<ControllerRequestError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ControllerRequestError)) throw new Error(`expected a ControllerRequestError, got ${String(error)}`);
  return error;
}

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

describe('controller client', () => {
  it('sends the bearer token and retries 5xx with backoff until an answer comes', async () => {
    const logs: string[] = [];
    const url = await serve((_req, res, n) =>
      n < 3 ? json(res, 503, { error: { code: 'cluster-api-unavailable', message: 'try later' } }) : json(res, 200, STATUS),
    );
    const c = client(url, { log: (line) => logs.push(line) });
    expect(await c.status()).toMatchObject({ cluster: { id: 'demo-abcde' } });
    expect(requests).toHaveLength(3);
    expect(requests.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(logs.filter((l) => l.includes('controller.retry'))).toHaveLength(2);
    expect(logs.join('\n')).not.toContain(TOKEN);
    await c.close();
  });

  it('fails at once on 401, saying method, path, status and the server message', async () => {
    const url = await serve((_req, res) =>
      json(res, 401, { error: { code: 'token-expired', message: 'the token has expired; render a new node config' } }),
    );
    const c = client(url);
    const error = await failure(c.register({ uuid: 'u', hostname: 'w1', ips: [], primaryIp: '10.0.0.2', agentVersion: 't' }));
    expect(requests).toHaveLength(1);
    expect(error.message).toBe(
      `controller POST ${routePath(API.register, { c: 'demo-abcde', n: 'w1' })}: 401 token-expired: the token has expired; render a new node config`,
    );
    expect(error.context).toMatchObject({ status: 401, url: routePath(API.register, { c: 'demo-abcde', n: 'w1' }) });
    expect(error.code).toBe('token-expired');
    expect(error.message).not.toContain(TOKEN);
    await c.close();
  });

  it('does not retry a 409 and keeps the code for the caller to branch on', async () => {
    const url = await serve((_req, res) => json(res, 409, { error: { code: 'not-initialized', message: 'not yet' } }));
    const c = client(url);
    const error = await failure(c.join({}, { waitSeconds: 1 }));
    expect(requests).toHaveLength(1);
    expect(requests[0]?.url).toBe(`${routePath(API.join, { c: 'demo-abcde' })}?wait=1`);
    expect(error.code).toBe('not-initialized');
    await c.close();
  });

  it('keeps the field the controller names on a 400, and the code', async () => {
    const url = await serve((_req, res) =>
      json(res, 400, { error: { code: 'bad-request', message: 'cluster x has no pool gpu', field: 'pool' } }),
    );
    const c = client(url);
    const error = await failure(c.events({ events: [{ phase: 'p', type: 'start', at: 'now', attempt: 1 }] }));
    expect({ code: error.code, field: error.field }).toEqual({ code: 'bad-request', field: 'pool' });
    expect(error.message).toContain('(field pool)');
    await c.close();
  });

  it('retries connection errors, then says it gave up and where it tried', async () => {
    const url = await serve(() => undefined);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    server = undefined;
    const c = client(url);
    const error = await failure(c.controlPlane());
    expect(error.message).toMatch(
      new RegExp(
        `^controller GET ${routePath(API.controlPlane, { c: 'demo-abcde' })}: no answer from ${url}: .*ECONNREFUSED.* \\(gave up after 5 attempts\\)$`,
      ),
    );
    await c.close();
  });

  it('trusts only the pinned CA, and does not retry a certificate that fails to verify', async () => {
    const url = await serve((_req, res) => json(res, 200, STATUS));
    const logs: string[] = [];
    const c = client(url, { caCert: otherCa.certPem, log: (line) => logs.push(line) });
    const error = await failure(c.status());
    expect(requests).toHaveLength(0);
    expect(error.message).toMatch(/certificate|self.signed|verify/i);
    expect(error.message).not.toContain('gave up');
    expect(logs.filter((l) => l.includes('controller.retry'))).toHaveLength(0);
    await c.close();
  });

  it('waits for a long-poll longer than its ordinary request timeout', async () => {
    const url = await serve((_req, res) =>
      setTimeout(() => json(res, 200, { epoch: 1, leaseTtlSeconds: 30, initialized: true, endpoint: '10.0.0.1:6443' }), 1500),
    );
    const c = new NodeClient(
      new ControllerTransport({ url, caCert: ca.certPem, token: TOKEN, retry: { retries: 0 }, timeoutMs: 500 }),
      'demo-abcde',
      'm1',
    );
    expect(await c.leaderState({ waitSeconds: 2, known: { epoch: 1, initialized: false } })).toMatchObject({ initialized: true });
    expect(requests[0]?.url).toBe(`${routePath(API.leaderState, { c: 'demo-abcde' })}?wait=2&epoch=1&initialized=false`);
    await c.close();
  });

  it('refuses an answer that does not match the protocol', async () => {
    const url = await serve((_req, res) => json(res, 200, { vip: '10.0.0.1' }));
    const c = client(url);
    const error = await failure(c.controlPlane());
    expect(error.message).toContain('unexpected answer');
    await c.close();
  });
});
