import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { destroyedAfterEach, namespaceSkipReason, scenarioLab, type ScenarioLab } from './harness.ts';

/** The API VIP moving between real keepalived instances, and tokens minted on demand. */
const skip = await namespaceSkipReason();
const track = destroyedAfterEach();
let s: ScenarioLab;

describe.skipIf(skip)('VIP and join tokens', () => {
  it('moves the VIP to another control-plane node within 5 s when the holder’s API server stops', async () => {
    s = track(await scenarioLab('vrrp', { masters: 3, workers: 0 }));
    expect(await Promise.all(s.lab.nodes.map((n) => s.boot(n)))).toEqual([0, 0, 0]);
    const holder = await s.lab.vipHolder();
    expect(holder).toBeDefined();

    const stoppedAt = Date.now();
    expect(s.lab.stopApiServer(holder!)).toBe(true);
    let movedTo: string | undefined;
    for (let i = 0; i < 200 && !movedTo; i++) {
      const now = await s.lab.vipHolder();
      if (now && now !== holder) movedTo = now.name;
      else await new Promise((r) => setTimeout(r, 25));
    }
    const seconds = (Date.now() - stoppedAt) / 1000;
    expect(movedTo, 'the VIP moved to another node').toBeDefined();
    expect(seconds).toBeLessThan(5);
  }, 300_000);

  it('joins a worker powered on long after the others: its token is minted when it asks', async () => {
    s = track(await scenarioLab('late', { masters: 1, workers: 2, bootstrapTokenTtlSeconds: 10 }));
    expect(await s.boot(s.node('m1'))).toBe(0);
    expect(await s.boot(s.node('w1'))).toBe(0);
    const early = YAML.parse(readFileSync(path.join(s.node('w1').root, 'etc/kubernetes/pke/kubeadm-join.yaml'), 'utf8')) as {
      discovery: { bootstrapToken: { token: string } };
    };

    // Longer than the token lifetime: every token minted so far has expired.
    await new Promise((r) => setTimeout(r, 11_000));
    const late = s.node('w2');
    const lateStarted = Date.now();
    expect(await s.boot(late)).toBe(0);
    const fresh = YAML.parse(readFileSync(path.join(late.root, 'etc/kubernetes/pke/kubeadm-join.yaml'), 'utf8')) as {
      discovery: { bootstrapToken: { token: string } };
    };
    expect(fresh.discovery.bootstrapToken.token).not.toBe(early.discovery.bootstrapToken.token);

    // The Secrets the controller wrote through the cluster's API (the API server stand-in on m1):
    // the early token had expired when w2 powered on; w2's was minted for it, valid then.
    const expiration = (token: string) => {
      const id = token.split('.')[0]!;
      const file = path.join(s.node('m1').root, `var/lib/pke-standins/apiserver/secrets/kube-system/bootstrap-token-${id}.json`);
      const secret = JSON.parse(readFileSync(file, 'utf8')) as { data: Record<string, string> };
      return Date.parse(Buffer.from(secret.data.expiration!, 'base64').toString('utf8'));
    };
    expect(expiration(early.discovery.bootstrapToken.token)).toBeLessThan(lateStarted);
    expect(expiration(fresh.discovery.bootstrapToken.token)).toBeGreaterThan(lateStarted);
  }, 300_000);
});

describe.skipIf(skip)('keepalived peers', () => {
  it('adds a control-plane node that joined later to the others’ peers with `pke-agent vip sync`', async () => {
    s = track(await scenarioLab('peers', { masters: 3, workers: 1 }));
    const [m1, m2, m3] = [s.node('m1'), s.node('m2'), s.node('m3')];
    expect(await Promise.all([m1, m2, s.node('w1')].map((n) => s.boot(n)))).toEqual([0, 0, 0]);
    expect(await s.boot(m3)).toBe(0);
    const peersOf = (node: typeof m1) => readFileSync(path.join(node.root, 'etc/keepalived/keepalived.conf'), 'utf8');
    // m1 and m2 wrote their keepalived.conf before m3 registered.
    expect(peersOf(m1)).not.toContain(m3.host.ip);

    const sync = await s.lab.agentCommand(m1, ['vip', 'sync', '--json']);
    expect(sync.exitCode).toBe(0);
    expect(sync.stderr).toContain('"event":"vip.synced","changed":true');
    expect(peersOf(m1)).toContain(`    ${m3.host.ip}\n`);
    expect(peersOf(m1)).toContain(`    ${m2.host.ip}\n`);
    // A second sync finds nothing to change; a worker has no VIP to sync.
    expect((await s.lab.agentCommand(m1, ['vip', 'sync', '--json'])).stderr).toContain('"changed":false');
    const worker = await s.lab.agentCommand(s.node('w1'), ['vip', 'sync', '--json']);
    expect(worker.exitCode).toBe(0);
    expect(worker.stderr).toContain('vip.sync-skipped');
  }, 300_000);
});
