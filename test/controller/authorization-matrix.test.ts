import { createSecretKey, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SignJWT, decodeJwt } from 'jose';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiErrorSchema } from '../../agent/protocol/api.ts';
import { API, routePath, type RouteName, type RouteSpec } from '../../agent/protocol/routes.ts';
import {
  CLUSTER_DEFAULTS,
  addNode,
  createCluster,
  registration,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

/**
 * Every route of the table by every kind of caller. The rows come from the route table itself
 * (agent/protocol/routes.ts): who may call a route is its `access`, so a route added to the
 * table is walked here too, and SAMPLES (typed by the table's names) does not compile without
 * its entry.
 */

const CALLERS = [
  'none',
  'malformed',
  'algNone',
  'wrongKey',
  'expired',
  'revoked',
  'otherCluster',
  'otherNode',
  'admin',
  'master',
  'worker',
  'viewer',
  'metricsToken',
  'revokedViewer',
] as const;
type Caller = (typeof CALLERS)[number];

interface Sample {
  /** The request body an allowed caller sends (a fresh one per call). */
  body?: () => unknown;
  query?: string;
  /**
   * What an allowed caller gets past authorization, where the state says other than the
   * route's success status (the handler's own refusal); the default is the route's status.
   */
  outcome?: Partial<Record<Caller, number>>;
}

let created = 0;
const now = () => new Date().toISOString();
const SAMPLES: Record<RouteName, Sample> = {
  livez: {},
  createCluster: { body: () => ({ ...CLUSTER_DEFAULTS, name: `matrix-${++created}` }) },
  listClusters: {},
  showCluster: {},
  nodeConfig: { body: () => ({ name: `extra-${++created}`, role: 'worker' }) },
  revoke: { body: () => ({ jti: spareJti }) },
  // w4 exists for this only; a second removal of it answers its status again.
  removeNode: { body: () => ({ node: 'w4' }) },
  setVsphere: { body: () => ({ server: 'vcenter.example.net', username: 'u', password: 'p', datacenters: ['DC0'] }) },
  // Only the lease holder (m1 claimed it) reads it.
  getVsphere: {},
  register: { body: () => ({ ...registration('x') }) },
  events: { body: () => ({ events: [{ phase: 'preflight', type: 'start', at: now(), attempt: 1 }] }) },
  // The holder reports joined with admin.conf (400 without it); a node never granted init or join is refused.
  joined: { body: () => ({}), outcome: { master: 400, worker: 409 } },
  ready: { body: () => ({}), outcome: { master: 409, worker: 409 } },
  claimLeader: { body: () => ({}) },
  leaderState: {},
  pki: {},
  // The holder gets its init material; a worker waits for the init and hears "not initialized".
  join: { body: () => ({}), query: '?wait=0', outcome: { worker: 409 } },
  controlPlane: {},
  status: {},
  timeline: {},
  createAccessToken: { body: () => ({ role: 'viewer', name: `matrix-${++created}` }) },
  listAccessTokens: {},
  revokeAccessToken: { body: () => ({ jti: spareAccessJti }) },
  metrics: {},
  viewIndex: {},
  viewCluster: {},
  viewEvents: {},
  // Whatever the header carries, the body's token logs in.
  viewLogin: { body: () => ({ token: tokens.viewer }) },
  viewLogout: {},
  // m1 never reported joined: the controller knows no control-plane member by that name.
  reportCertificates: {
    body: () => ({ checkedAt: now(), certificates: [{ name: 'apiserver.crt', notAfter: now() }] }),
    outcome: { master: 409 },
  },
  // Likewise: only a joined control-plane member may renew, one at a time.
  claimRenewal: { outcome: { master: 409 } },
  requestBackup: {},
  listBackups: {},
  // Not a member of an initialized cluster: nothing is due for it.
  claimBackup: {},
  // No claim was handed to m1: refused before the body is read.
  uploadBackup: {
    body: () => ({}),
    query: `?id=20261206T110000Z-0a1b2c3d&sha256=${'0'.repeat(64)}&takenAt=2026-12-06T11:00:00Z`,
    outcome: { master: 409 },
  },
  // The cluster is not initialized: nothing to upgrade, no upgrade slot to hold.
  startUpgrade: { body: () => ({ to: '1.32.0' }), outcome: { admin: 409 } },
  upgradeSlot: { body: () => ({ to: '1.32.0' }), query: '?wait=0', outcome: { master: 409, worker: 409 } },
  drain: { body: () => ({}), outcome: { master: 409, worker: 409 } },
  uncordon: { outcome: { master: 409, worker: 409 } },
  upgraded: { body: () => ({ to: '1.32.0' }), outcome: { master: 409, worker: 409 } },
  // The matrix's cluster is not provisioned by the controller: nothing to scale.
  scalePool: { body: () => ({ pool: 'workers', size: 1 }), outcome: { admin: 409 } },
};

let t: TestController;
let dispatcher: Agent;
let clusterA: string;
let spareJti: string;
let spareAccessJti: string;
const nodes: TestNode[] = [];
const tokens = {} as Record<Caller, string | undefined>;
/** The node name each caller puts into `{n}`: its own, except `otherNode`. */
const SELF: Record<Caller, string> = {
  none: 'w1',
  malformed: 'w1',
  algNone: 'w1',
  wrongKey: 'w1',
  expired: 'w1',
  revoked: 'w2',
  otherCluster: 'm1',
  otherNode: 'm1',
  admin: 'm1',
  master: 'm1',
  worker: 'w1',
  viewer: 'm1',
  metricsToken: 'm1',
  revokedViewer: 'm1',
};

beforeAll(async () => {
  t = await startTestController();
  dispatcher = new Agent({ connect: { ca: t.controller.caCertPem } });
  clusterA = (await createCluster(t.admin)).id;
  const clusterB = (await createCluster(t.admin)).id;
  const master = await addNode(t.admin, clusterA, 'm1', 'master');
  const worker = await addNode(t.admin, clusterA, 'w1', 'worker');
  const revoked = await addNode(t.admin, clusterA, 'w2', 'worker');
  const other = await addNode(t.admin, clusterB, 'm1', 'master');
  nodes.push(master, worker, revoked, other);
  spareJti = (await t.admin.nodeConfig(clusterA, { name: 'w3', role: 'worker' })).tokenId;
  await t.admin.nodeConfig(clusterA, { name: 'w4', role: 'worker' });
  await t.admin.revoke(clusterA, { jti: revoked.tokenId });
  expect((await master.client.claimLeader({})).granted).toBe(true);
  spareAccessJti = (await t.admin.createAccessToken({ role: 'metrics' })).jti;
  const revokedViewer = await t.admin.createAccessToken({ role: 'viewer' });
  await t.admin.revokeAccessToken(revokedViewer.jti);

  const signingKey = createSecretKey(await readFile(path.join(t.dataDir, 'signing.key')));
  const workerClaims = decodeJwt(worker.config.controller.token);
  const issued = Math.floor(Date.now() / 1000);
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  Object.assign(tokens, {
    none: undefined,
    malformed: 'not-a-jwt',
    algNone: `${part({ alg: 'none', typ: 'JWT' })}.${part(workerClaims)}.`,
    wrongKey: await new SignJWT(workerClaims).setProtectedHeader({ alg: 'HS256' }).sign(randomBytes(32)),
    // Signed with the controller's own key: only the expiry is wrong.
    expired: await new SignJWT({ kind: 'node', cluster: clusterA, role: 'worker', pool: 'workers' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('pke-controller')
      .setSubject('w1')
      .setJti('expired-1')
      .setIssuedAt(issued - 7200)
      .setExpirationTime(issued - 3600)
      .sign(signingKey),
    revoked: revoked.config.controller.token,
    otherCluster: other.config.controller.token,
    otherNode: worker.config.controller.token,
    admin: (await readFile(t.controller.adminTokenFile, 'utf8')).trim(),
    master: master.config.controller.token,
    worker: worker.config.controller.token,
    viewer: (await t.admin.createAccessToken({ role: 'viewer' })).token,
    metricsToken: (await t.admin.createAccessToken({ role: 'metrics' })).token,
    revokedViewer: revokedViewer.token,
  } satisfies Record<Caller, string | undefined>);
});

afterAll(async () => {
  await dispatcher?.close();
  await Promise.all(nodes.map((node) => node.client.close()));
  await t?.close();
});

/** Past authentication and authorization, or refused with this status and code. */
type Expected = { allowed: true } | { allowed: false; status: number; code: string };

function expected(spec: RouteSpec, caller: Caller): Expected {
  if (spec.access === 'anyone') return { allowed: true };
  switch (caller) {
    case 'none':
    case 'malformed':
    case 'algNone':
    case 'wrongKey':
      return { allowed: false, status: 401, code: 'unauthorized' };
    case 'expired':
      return { allowed: false, status: 401, code: 'token-expired' };
    case 'revoked':
    case 'revokedViewer':
      return { allowed: false, status: 401, code: 'token-revoked' };
    case 'otherCluster':
    case 'otherNode':
      return { allowed: false, status: 403, code: 'forbidden' };
    case 'admin':
      return spec.access === 'node' || spec.access === 'control-plane'
        ? { allowed: false, status: 403, code: 'forbidden' }
        : { allowed: true };
    case 'master':
      return spec.access === 'admin' || readOnly(spec) ? { allowed: false, status: 403, code: 'forbidden' } : { allowed: true };
    case 'worker':
      return spec.access === 'admin' || spec.access === 'control-plane' || readOnly(spec)
        ? { allowed: false, status: 403, code: 'forbidden' }
        : { allowed: true };
    case 'viewer':
      return readOnly(spec) ? { allowed: true } : { allowed: false, status: 403, code: 'forbidden' };
    case 'metricsToken':
      return spec.access === 'metrics' ? { allowed: true } : { allowed: false, status: 403, code: 'forbidden' };
  }
}

/** Routes that show and never change: the web view, the timeline, the metrics. Node tokens never read them. */
function readOnly(spec: RouteSpec): boolean {
  return spec.access === 'viewer' || spec.access === 'metrics';
}

/** `otherNode` is a node acting under another node's name: only paths with `{n}` name one. */
function callers(spec: RouteSpec): Caller[] {
  return CALLERS.filter((caller) => caller !== 'otherNode' || spec.path.includes('{n}'));
}

async function call(spec: RouteSpec, sample: Sample, caller: Caller) {
  const urlPath = routePath(spec, { c: clusterA, n: SELF[caller] }) + (sample.query ?? '');
  const token = tokens[caller];
  const body = sample.body?.();
  const answer = await request(`${t.controller.url}${urlPath}`, {
    method: spec.method,
    dispatcher,
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = String(answer.headers['content-type'] ?? '');
  if (type.startsWith('text/event-stream')) {
    // A stream lasts until the client leaves: its first event is enough.
    for await (const chunk of answer.body) {
      answer.body.destroy();
      return { status: answer.statusCode, type, body: String(chunk) };
    }
  }
  const text = await answer.body.text();
  return {
    status: answer.statusCode,
    type,
    body: type.startsWith('application/json') && text !== '' ? (JSON.parse(text) as unknown) : text === '' ? undefined : text,
  };
}

describe('authorization matrix, from the route table', () => {
  it('has a sample for every route of the table, and nothing else', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(API).sort());
  });

  // In the table's order: getVsphere needs setVsphere's connection.
  it.each(Object.entries(API).map(([name, spec]) => [name, spec] as const))('%s', async (name, spec) => {
    const sample = SAMPLES[name as RouteName];
    for (const caller of callers(spec)) {
      const answer = await call(spec, sample, caller);
      const want = expected(spec, caller);
      if (want.allowed) {
        expect({ caller, status: answer.status, body: answer.body }).toMatchObject({
          caller,
          status: sample.outcome?.[caller] ?? spec.status,
        });
      } else if (spec.produces === 'html') {
        // A page route shows its refusal as a page: the login form for 401.
        expect({ caller, status: answer.status, type: answer.type }).toEqual({
          caller,
          status: want.status,
          type: 'text/html; charset=utf-8',
        });
        if (want.status === 401) expect(answer.body).toContain('<form id="login"');
      } else {
        expect({ caller, status: answer.status }).toEqual({ caller, status: want.status });
        const problem = apiErrorSchema.parse(answer.body);
        expect({ caller, code: problem.error.code }).toEqual({ caller, code: want.code });
        expect(problem.error.message.length).toBeGreaterThan(10);
      }
    }
  });
});
