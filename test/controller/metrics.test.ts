import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actOutFormation, type Formation } from './formation.ts';
import { startTestController, type TestController } from './helpers.ts';
import { parseMetrics, prom2jsonSkipReason, type PromFamily, type PromSample } from './prom2json.ts';

/** /metrics, scraped as Prometheus would (a metrics token) and read with Prometheus' own text-format parser. */

const skip = prom2jsonSkipReason();

let t: TestController;
let formation: Formation;
let dispatcher: Agent;
let metricsToken: string;

beforeAll(async () => {
  if (skip) return;
  t = await startTestController();
  dispatcher = new Agent({ connect: { ca: t.controller.caCertPem } });
  formation = await actOutFormation(t, { masters: 3, workers: 2, failing: 'w2', failure: 'kubeadm join exited 1' });
  metricsToken = (await t.admin.createAccessToken({ role: 'metrics', name: 'prometheus' })).token;
}, 60_000);

afterAll(async () => {
  await formation?.close();
  await dispatcher?.close();
  await t?.close();
});

async function scrape(token = metricsToken): Promise<{ status: number; type: string; text: string }> {
  const answer = await request(`${t.controller.url}/metrics`, { dispatcher, headers: { authorization: `Bearer ${token}` } });
  return { status: answer.statusCode, type: String(answer.headers['content-type']), text: await answer.body.text() };
}

function family(families: PromFamily[], name: string): PromFamily {
  const found = families.find((f) => f.name === name);
  if (!found) throw new Error(`no metric family ${name} in ${families.map((f) => f.name).join(', ')}`);
  return found;
}

function sample(f: PromFamily, labels: Record<string, string>): PromSample | undefined {
  return f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

describe.skipIf(skip)('/metrics', () => {
  it('is the Prometheus text format, for a metrics token', async () => {
    const answer = await scrape();
    expect(answer.status).toBe(200);
    expect(answer.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = await parseMetrics(answer.text);
    expect(families.length).toBeGreaterThan(10);
    expect(family(families, 'pke_controller_process_resident_memory_bytes').type).toBe('GAUGE');
  });

  it('counts requests by route and status in a latency histogram', async () => {
    const families = await parseMetrics((await scrape()).text);
    const requests = family(families, 'pke_controller_http_request_duration_seconds');
    expect(requests.type).toBe('HISTOGRAM');
    const events = sample(requests, { method: 'POST', route: '/v1/clusters/{c}/nodes/{n}/events', status: '204' });
    expect(Number(events?.count)).toBe(formation.eventPosts);
    expect(Object.keys(events?.buckets ?? {})).toContain('300');
    // The leader's init grant, two control-plane joins, two workers.
    const joins = sample(requests, { method: 'POST', route: '/v1/clusters/{c}/join', status: '200' });
    expect(Number(joins?.count)).toBe(5);
    const createdCluster = sample(requests, { method: 'POST', route: '/v1/clusters', status: '201' });
    expect(Number(createdCluster?.count)).toBe(1);
  });

  it('shows nodes by state, the lease and the join slot of each cluster', async () => {
    const families = await parseMetrics((await scrape()).text);
    const nodes = family(families, 'pke_controller_nodes');
    const count = (role: string, state: string) => Number(sample(nodes, { cluster: formation.cluster, role, state })?.value ?? 0);
    expect({ masters: count('master', 'ready'), ready: count('worker', 'ready'), failed: count('worker', 'failed') }).toEqual({
      masters: 3,
      ready: 1,
      failed: 1,
    });
    const one = (name: string) => Number(sample(family(families, name), { cluster: formation.cluster })?.value);
    expect(one('pke_controller_leader_lease_epoch')).toBe(1);
    expect(one('pke_controller_leader_lease_held')).toBe(1);
    expect(one('pke_controller_cluster_initialized')).toBe(1);
    expect(one('pke_controller_join_slot_held')).toBe(0);
    expect(one('pke_controller_join_slot_waiting')).toBe(0);
  });

  it('times the join-slot waits and the phases the nodes reported', async () => {
    const families = await parseMetrics((await scrape()).text);
    const waits = sample(family(families, 'pke_controller_join_slot_wait_seconds'), { cluster: formation.cluster });
    // m2 found the slot free; m3 asked while m2 held it and waited until m2 reported joined.
    expect(Number(waits?.count)).toBe(2);
    expect(Number(waits?.sum)).toBeGreaterThan(0);
    const phases = family(families, 'pke_controller_phase_duration_seconds');
    const init = sample(phases, { phase: 'kube-init', role: 'master', outcome: 'done' });
    expect({ count: Number(init?.count), sum: Number(init?.sum) }).toEqual({ count: 1, sum: 21 });
    const failedJoin = sample(phases, { phase: 'kube-join', role: 'worker', outcome: 'failed' });
    expect(Number(failedJoin?.count)).toBe(1);
  });

  it('refuses a scrape without a token, and with a node token', async () => {
    expect((await request(`${t.controller.url}/metrics`, { dispatcher })).statusCode).toBe(401);
    const node = formation.nodes[0]!;
    expect((await scrape(node.config.controller.token)).status).toBe(403);
  });
});
