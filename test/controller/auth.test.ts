import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiErrorSchema, MAX_BODY_BYTES } from '../../agent/protocol/api.ts';
import { addNode, createCluster, registration, startTestController, type TestController, type TestNode } from './helpers.ts';

let t: TestController;
let dispatcher: Agent;
let clusterA: string;
let master: TestNode;
let worker: TestNode;
const tokens = {} as Record<'admin' | 'master' | 'worker', string>;

beforeAll(async () => {
  t = await startTestController();
  dispatcher = new Agent({ connect: { ca: t.controller.caCertPem } });
  clusterA = (await createCluster(t.admin)).id;
  master = await addNode(t.admin, clusterA, 'm1', 'master');
  worker = await addNode(t.admin, clusterA, 'w1', 'worker');
  tokens.admin = (await readFile(t.controller.adminTokenFile, 'utf8')).trim();
  tokens.master = master.config.controller.token;
  tokens.worker = worker.config.controller.token;
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

describe('authorization (the whole matrix: authorization-matrix.test.ts)', () => {
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
      events: [
        { phase: 'preflight', type: 'start', at: 'now', attempt: 1 },
        { phase: 'x', type: 'exploded', at: 'now', attempt: 1 },
      ],
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
    const huge = await call(
      'POST',
      `/v1/clusters/${clusterA}/nodes/w1/events`,
      tokens.worker,
      undefined,
      JSON.stringify({ events: [], pad: 'x'.repeat(MAX_BODY_BYTES) }),
    );
    expect(huge.status).toBe(413);
    expect(apiErrorSchema.parse(huge.body).error.code).toBe('body-too-large');
  });

  it('validates query parameters', async () => {
    const answer = await call('GET', `/v1/clusters/${clusterA}/leader?wait=9999`, tokens.master);
    expect(answer.status).toBe(400);
    expect(apiErrorSchema.parse(answer.body).error.field).toBe('query.wait');
  });
});
