import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { destroyedAfterEach, namespaceSkipReason, scenarioLab } from './harness.ts';

/**
 * `npm run lab -- --ha` as a test: three controller replicas on a three-member etcd cluster
 * (Debian's etcd-server), the stand-in tier's nodes, the first replica SIGKILLed mid-formation.
 */
const skip = (await namespaceSkipReason()) ?? (existsSync('/usr/bin/etcd') ? undefined : 'no /usr/bin/etcd (etcd-server)');
const track = destroyedAfterEach();

describe.skipIf(skip)('a controller with three replicas on etcd', () => {
  it('forms the cluster through the other two when the replica every node config names first is SIGKILLed mid-formation', async () => {
    const s = track(await scenarioLab('ha', { masters: 3, workers: 2, ha: true }));
    const formation = Promise.all(s.lab.nodes.map((n) => s.boot(n)));
    let killedWhile: string | undefined;
    for (let i = 0; i < 600 && !killedWhile; i++) {
      const status = (await s.lab.clusterStatus().catch(() => undefined)) as { leader?: { holder?: string } } | undefined;
      if (status?.leader?.holder) {
        killedWhile = status.leader.holder;
        await s.lab.killReplica(0);
      } else await new Promise((r) => setTimeout(r, 100));
    }
    expect(killedWhile, 'a node held the lease while the replica was killed').toBeDefined();
    expect(await formation).toEqual([0, 0, 0, 0, 0]);

    // `controller status` works through each replica still running, and they agree.
    const views = await s.lab.eachReplicaCli(['status', '--cluster', s.lab.clusterName, '--json']);
    expect(views.map((v) => v.replica)).toEqual(['ctl2', 'ctl3']);
    for (const { output } of views) {
      const status = JSON.parse(output) as { nodes: { name: string; state: string }[]; leader: { initialized: boolean } };
      expect(status.leader.initialized).toBe(true);
      expect(status.nodes.map((n) => `${n.name}:${n.state}`).sort()).toEqual(['m1:ready', 'm2:ready', 'm3:ready', 'w1:ready', 'w2:ready']);
    }
  }, 300_000);
});
