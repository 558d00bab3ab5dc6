import { createSecretKey, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SignJWT, decodeJwt } from 'jose';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiErrorSchema, MAX_BODY_BYTES } from '../../agent/protocol/api.ts';
import { CLUSTER_DEFAULTS, addNode, createCluster, registration, startTestController, type TestController, type TestNode } from './helpers.ts';

type Who = 'admin' | 'master' | 'worker' | 'otherCluster' | 'expired' | 'revoked' | 'algNone' | 'wrongKey' | 'noToken';
const EVERYONE: Who[] = ['admin', 'master', 'worker', 'otherCluster', 'expired', 'revoked', 'algNone', 'wrongKey', 'noToken'];

let t: TestController;
let dispatcher: Agent;
let clusterA: string;
let clusterB: string;
let master: TestNode;
let worker: TestNode;
let spareJti: string;
const tokens = {} as Record<Who, string | undefined>;
/** The node each principal acts as in `{n}` paths. */
const selfName = {} as Record<Who, string>;

beforeAll(async () => {
  t = await startTestController();
  dispatcher = new Agent({ connect: { ca: t.controller.caCertPem } });
  clusterA = (await createCluster(t.admin)).id;
  clusterB = (await createCluster(t.admin)).id;
  master = await addNode(t.admin, clusterA, 'm1', 'master');
  worker = await addNode(t.admin, clusterA, 'w1', 'worker');
  const revoked = await addNode(t.admin, clusterA, 'w2', 'worker');
  const other = await addNode(t.admin, clusterB, 'm1', 'master');
  spareJti = (await t.admin.nodeConfig(clusterA, { name: 'w3', role: 'worker' })).tokenId;
  await t.admin.revoke(clusterA, { jti: revoked.tokenId });

  const signingKey = createSecretKey(await readFile(path.join(t.dataDir, 'signing.key')));
  const workerClaims = decodeJwt(worker.config.controller.token);
  const now = Math.floor(Date.now() / 1000);
  const claims = { kind: 'node', cluster: clusterA, role: 'worker', pool: 'workers' };
  tokens.admin = (await readFile(t.controller.adminTokenFile, 'utf8')).trim();
  tokens.master = master.config.controller.token;
  tokens.worker = worker.config.controller.token;
  tokens.otherCluster = other.config.controller.token;
  tokens.revoked = revoked.config.controller.token;
  // Signed with the controller's own key: only the expiry is wrong.
  tokens.expired = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('pke-controller')
    .setSubject('w1')
    .setJti('expired-1')
    .setIssuedAt(now - 7200)
    .setExpirationTime(now - 3600)
    .sign(signingKey);
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  tokens.algNone = `${part({ alg: 'none', typ: 'JWT' })}.${part(workerClaims)}.`;
  tokens.wrongKey = await new SignJWT(workerClaims).setProtectedHeader({ alg: 'HS256' }).sign(randomBytes(32));
  tokens.noToken = undefined;
  Object.assign(selfName, { admin: 'm1', master: 'm1', worker: 'w1', otherCluster: 'm1', expired: 'w1', revoked: 'w2', algNone: 'w1', wrongKey: 'w1', noToken: 'w1' });
});

afterAll(async () => {
  await dispatcher?.close();
  await Promise.all([master?.client.close(), worker?.client.close()]);
  await t?.close();
});

async function call(method: 'GET' | 'POST', urlPath: string, token: string | undefined, body?: unknown, rawBody?: string) {
  const answer = await request(`${t.controller.url}${urlPath}`, {
    method,
    dispatcher,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), 'content-type': 'application/json' },
    body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await answer.body.text();
  return { status: answer.statusCode, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

interface Row {
  name: string;
  method: 'GET' | 'POST';
  path: (who: Who) => string;
  body?: (who: Who) => unknown;
  /** Who gets past authentication and authorization, with the status they get; everyone else is refused. */
  allowed: Partial<Record<Who, number>>;
  /** Whether this is a cluster route (revocation is checked there; elsewhere a node token is simply forbidden). */
  clusterScoped: boolean;
}

let created = 0;
const ROWS: Row[] = [
  { name: 'create cluster', method: 'POST', path: () => '/v1/clusters', body: () => ({ ...CLUSTER_DEFAULTS, name: `authz-${++created}` }), allowed: { admin: 201 }, clusterScoped: false },
  { name: 'list clusters', method: 'GET', path: () => '/v1/clusters', allowed: { admin: 200 }, clusterScoped: false },
  { name: 'show cluster', method: 'GET', path: () => `/v1/clusters/${clusterA}`, allowed: { admin: 200 }, clusterScoped: true },
  { name: 'node-config', method: 'POST', path: () => `/v1/clusters/${clusterA}/nodes`, body: () => ({ name: `extra-${++created}`, role: 'worker' }), allowed: { admin: 201 }, clusterScoped: true },
  { name: 'revoke', method: 'POST', path: () => `/v1/clusters/${clusterA}/revocations`, body: () => ({ jti: spareJti }), allowed: { admin: 200 }, clusterScoped: true },
  {
    name: 'register',
    method: 'POST',
    path: (who) => `/v1/clusters/${clusterA}/nodes/${selfName[who]}/register`,
    body: (who) => registration(selfName[who]),
    allowed: { master: 200, worker: 200 },
    clusterScoped: true,
  },
  {
    name: 'events',
    method: 'POST',
    path: (who) => `/v1/clusters/${clusterA}/nodes/${selfName[who]}/events`,
    body: () => ({ events: [{ phase: 'preflight', type: 'start', at: new Date().toISOString(), attempt: 1 }] }),
    allowed: { master: 204, worker: 204 },
    clusterScoped: true,
  },
  // Neither node was granted init or join: both pass authorization and are refused by the route.
  { name: 'joined', method: 'POST', path: (who) => `/v1/clusters/${clusterA}/nodes/${selfName[who]}/joined`, body: () => ({}), allowed: { master: 409, worker: 409 }, clusterScoped: true },
  { name: 'ready', method: 'POST', path: (who) => `/v1/clusters/${clusterA}/nodes/${selfName[who]}/ready`, body: () => ({}), allowed: { master: 409, worker: 409 }, clusterScoped: true },
  { name: 'claim leader', method: 'POST', path: () => `/v1/clusters/${clusterA}/leader`, body: () => ({}), allowed: { master: 200 }, clusterScoped: true },
  { name: 'leader state', method: 'GET', path: () => `/v1/clusters/${clusterA}/leader`, allowed: { master: 200 }, clusterScoped: true },
  { name: 'pki', method: 'GET', path: () => `/v1/clusters/${clusterA}/pki`, allowed: { master: 200 }, clusterScoped: true },
  // The master holds the lease (row above): init material. The worker passes authorization and hears "not initialized".
  { name: 'join', method: 'POST', path: () => `/v1/clusters/${clusterA}/join?wait=0`, body: () => ({}), allowed: { master: 200, worker: 409 }, clusterScoped: true },
  { name: 'control plane', method: 'GET', path: () => `/v1/clusters/${clusterA}/control-plane`, allowed: { admin: 200, master: 200, worker: 200 }, clusterScoped: true },
  { name: 'status', method: 'GET', path: () => `/v1/clusters/${clusterA}/status`, allowed: { admin: 200, master: 200, worker: 200 }, clusterScoped: true },
];

/** What a refused caller gets: 401 for a token that is not valid, 403 for a valid one without the right. */
function refusal(row: Row, who: Who): { status: number; code: string } {
  switch (who) {
    case 'expired':
      return { status: 401, code: 'token-expired' };
    case 'algNone':
    case 'wrongKey':
    case 'noToken':
      return { status: 401, code: 'unauthorized' };
    case 'revoked':
      return row.clusterScoped ? { status: 401, code: 'token-revoked' } : { status: 403, code: 'forbidden' };
    default:
      return { status: 403, code: 'forbidden' };
  }
}

describe('authorization matrix', () => {
  // Rows run in order: later rows rely on the state earlier ones leave (the master claims the lease before join).
  it.each(ROWS.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
    for (const who of EVERYONE) {
      const answer = await call(row.method, row.path(who), tokens[who], row.body?.(who));
      const allowed = row.allowed[who];
      if (allowed !== undefined) {
        expect({ who, status: answer.status, body: answer.body }).toMatchObject({ who, status: allowed });
      } else {
        const expected = refusal(row, who);
        expect({ who, status: answer.status }).toEqual({ who, status: expected.status });
        const problem = apiErrorSchema.parse(answer.body);
        expect({ who, code: problem.error.code }).toEqual({ who, code: expected.code });
        expect(problem.error.message.length).toBeGreaterThan(10);
      }
    }
  });

  it('refuses a node acting under another node name', async () => {
    const answer = await call('POST', `/v1/clusters/${clusterA}/nodes/w1/register`, tokens.master, registration('w1'));
    expect(answer.status).toBe(403);
    expect(apiErrorSchema.parse(answer.body).error.message).toContain('node m1, not w1');
  });

  it('refuses a worker the private keys, whatever it asks for', async () => {
    const answer = await call('GET', `/v1/clusters/${clusterA}/pki`, tokens.worker);
    expect(answer.status).toBe(403);
    expect(JSON.stringify(answer.body)).not.toContain('PRIVATE KEY');
  });

  it('answers 404 to the admin for a cluster that does not exist', async () => {
    const answer = await call('GET', '/v1/clusters/nope-xxxxx', tokens.admin);
    expect(answer.status).toBe(404);
    expect(apiErrorSchema.parse(answer.body).error.code).toBe('not-found');
  });

  it('refuses every token of a node revoked by name', async () => {
    const node = await addNode(t.admin, clusterA, 'w9', 'worker');
    const second = await t.admin.nodeConfig(clusterA, { name: 'w9', role: 'worker' });
    expect((await t.admin.revoke(clusterA, { node: 'w9' })).revoked.sort()).toEqual([node.tokenId, second.tokenId].sort());
    const answer = await call('POST', `/v1/clusters/${clusterA}/nodes/w9/register`, node.config.controller.token, registration('w9'));
    expect(answer.status).toBe(401);
    expect(apiErrorSchema.parse(answer.body).error.code).toBe('token-revoked');
    await node.client.close();
  });
});

describe('request validation', () => {
  it('names the missing field of a body (400)', async () => {
    const { uuid: _uuid, ...body } = registration('w1');
    const answer = await call('POST', `/v1/clusters/${clusterA}/nodes/w1/register`, tokens.worker, body);
    expect(answer.status).toBe(400);
    expect(apiErrorSchema.parse(answer.body).error).toMatchObject({ code: 'bad-request', field: 'uuid' });
  });

  it('names the nested field path (400)', async () => {
    const answer = await call('POST', `/v1/clusters/${clusterA}/nodes/w1/events`, tokens.worker, {
      events: [{ phase: 'preflight', type: 'start', at: 'now', attempt: 1 }, { phase: 'x', type: 'exploded', at: 'now', attempt: 1 }],
    });
    expect(answer.status).toBe(400);
    expect(apiErrorSchema.parse(answer.body).error.field).toBe('events.1.type');
  });

  it('refuses unknown keys, so a typo never passes silently', async () => {
    const answer = await call('POST', `/v1/clusters/${clusterA}/leader`, tokens.master, { epoc: 1 });
    expect(answer.status).toBe(400);
  });

  it('refuses a body that is not JSON (400) and one above the size limit (413)', async () => {
    const notJson = await call('POST', `/v1/clusters/${clusterA}/nodes/w1/events`, tokens.worker, undefined, '{"events": [');
    expect(notJson.status).toBe(400);
    const huge = await call('POST', `/v1/clusters/${clusterA}/nodes/w1/events`, tokens.worker, undefined, JSON.stringify({ events: [], pad: 'x'.repeat(MAX_BODY_BYTES) }));
    expect(huge.status).toBe(413);
    expect(apiErrorSchema.parse(huge.body).error.code).toBe('body-too-large');
  });

  it('validates query parameters', async () => {
    const answer = await call('GET', `/v1/clusters/${clusterA}/leader?wait=9999`, tokens.master);
    expect(answer.status).toBe(400);
    expect(apiErrorSchema.parse(answer.body).error.field).toBe('query.wait');
  });
});
