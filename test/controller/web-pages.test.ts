import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterParts } from '../../agent/controller/web/pages.ts';
import type { ClusterStatus } from '../../agent/protocol/api.ts';
import { createCluster, startTestController, type TestController } from './helpers.ts';

/** The web view's pages as HTTP answers: what they admit, what the cookie opens, and what they escape. */

let t: TestController;
let dispatcher: Agent;
let adminToken: string;

beforeAll(async () => {
  t = await startTestController();
  dispatcher = new Agent({ connect: { ca: t.controller.caCertPem } });
  adminToken = (await readFile(t.controller.adminTokenFile, 'utf8')).trim();
});

afterAll(async () => {
  await dispatcher?.close();
  await t?.close();
});

async function get(path: string, headers: Record<string, string> = {}) {
  const answer = await request(`${t.controller.url}${path}`, { dispatcher, headers });
  return { status: answer.statusCode, headers: answer.headers, text: await answer.body.text() };
}

describe('the web view over HTTP', () => {
  it('serves pages that load nothing but themselves, never framed', async () => {
    const page = await get('/ui', { authorization: `Bearer ${adminToken}` });
    expect(page.status).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+=*'/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.text).not.toMatch(/<(script|link|img)[^>]+(src|href)=/);
  });

  it('logs in with a cookie that opens the view and nothing else', async () => {
    const login = await request(`${t.controller.url}/ui/login`, {
      dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: adminToken }),
    });
    expect(login.statusCode).toBe(204);
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toMatch(/^pke_view=[^;]+; Path=\/ui; Max-Age=43200; HttpOnly; Secure; SameSite=Strict$/);
    const cookie = setCookie.split(';')[0]!;
    const cluster = (await createCluster(t.admin)).id;
    expect((await get(`/ui/clusters/${cluster}`, { cookie })).status).toBe(200);
    // Even the admin's own token, as a cookie, opens no admin route: those take the bearer header only.
    const admin = await get('/v1/clusters', { cookie });
    expect(admin.status).toBe(401);
    expect((await get(`/v1/clusters/${cluster}/timeline`, { cookie })).status).toBe(401);
  });

  it('escapes what nodes report', () => {
    const status: ClusterStatus = {
      cluster: { id: 'c-1', name: 'c', kubernetesVersion: '1.31.2', endpoint: '10.0.0.1:6443', controlPlaneNodes: 1, virtualRouterId: 7 },
      leader: { epoch: 0, initialized: false },
      nodes: [
        {
          name: 'w1',
          role: 'worker',
          pool: 'workers',
          state: 'failed',
          ips: [],
          phase: '<b>preflight</b>',
          phaseState: 'failed',
          lastError: '<img src=x onerror=alert(1)>\u001b[31m',
        },
      ],
    };
    const parts = clusterParts(status, { cluster: { id: 'c-1', name: 'c' }, now: new Date(0).toISOString(), nodes: [] }, 'none');
    expect(parts.nodes).not.toContain('<img');
    expect(parts.nodes).not.toContain('<b>');
    expect(parts.nodes).toContain('&#60;img src=x onerror=alert(1)&#62;\\x1b[31m');
  });
});
