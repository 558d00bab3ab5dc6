import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createNodeClient, AdminClient, type NodeClient } from '../../agent/protocol/client.ts';
import { ControllerRequestError } from '../../agent/protocol/errors.ts';
import { AGENT_ENTRY, scratchDir } from '../helpers/cli.ts';
import {
  CLUSTER_DEFAULTS,
  NO_RETRY,
  agentConfigOf,
  killProcess,
  registration,
  spawnController,
  type ControllerProcess,
} from './helpers.ts';
import { execa } from 'execa';

const children: ControllerProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) await killProcess(child.child);
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(dataDir: string): Promise<{ proc: ControllerProcess; admin: AdminClient }> {
  const proc = await spawnController(dataDir);
  children.push(proc);
  const admin = new AdminClient({ url: proc.url, caCert: proc.caCertPem, token: proc.adminToken, retry: NO_RETRY });
  cleanups.push(() => admin.close());
  return { proc, admin };
}

describe('durability', () => {
  it('keeps every acknowledged write across a SIGKILL during concurrent writes', async () => {
    const data = scratchDir('durable');
    cleanups.push(data.remove);
    const { proc, admin } = await start(data.dir);
    const cluster = await admin.createCluster({ ...CLUSTER_DEFAULTS, name: 'durable', leaseTtlSeconds: 600 });

    // Nodes that will register during the storm, and a lease whose expiry must survive.
    const prepared: NodeClient[] = [];
    for (let i = 0; i < 60; i += 1) {
      const client = createNodeClient(
        agentConfigOf(await admin.nodeConfig(cluster.id, { name: `r${i}`, role: i === 0 ? 'master' : 'worker' })),
        { retry: NO_RETRY },
      );
      prepared.push(client);
      cleanups.push(() => client.close());
    }
    const lease = await (prepared[0] as NodeClient).claimLeader({});

    const acknowledged = { configs: new Set<string>(), registers: new Set<string>() };
    let killed = false;
    const killAfter = 80;
    const maybeKill = () => {
      if (!killed && acknowledged.configs.size + acknowledged.registers.size >= killAfter) {
        killed = true;
        process.kill(proc.child.pid ?? 0, 'SIGKILL');
      }
    };
    const writes = [
      ...Array.from({ length: 300 }, (_, i) => async () => {
        await admin.nodeConfig(cluster.id, { name: `n${i}`, role: 'worker' });
        acknowledged.configs.add(`n${i}`);
        maybeKill();
      }),
      ...prepared.map((client, i) => async () => {
        await client.register(registration(`r${i}`));
        acknowledged.registers.add(`r${i}`);
        maybeKill();
      }),
    ];
    // Interleaved, 40 in flight at a time, until the process is gone.
    const order = writes.map((w, i) => ({ w, k: (i * 7919) % writes.length })).sort((a, b) => a.k - b.k);
    let next = 0;
    const worker = async () => {
      while (next < order.length && !killed) {
        const write = order[next++];
        await write?.w().catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: 40 }, worker));
    expect(killed).toBe(true);
    await killProcess(proc.child);

    const restarted = await start(data.dir);
    const status = await restarted.admin.status(cluster.id);
    const byName = new Map(status.nodes.map((n) => [n.name, n]));
    for (const name of acknowledged.configs) expect({ name, known: byName.has(name) }).toEqual({ name, known: true });
    for (const name of acknowledged.registers)
      expect({ name, registered: byName.get(name)?.registeredAt !== undefined }).toEqual({ name, registered: true });
    expect(acknowledged.configs.size + acknowledged.registers.size).toBeGreaterThanOrEqual(killAfter);
    // The lease kept its absolute expiry.
    expect(status.leader).toMatchObject({ holder: 'r0', epoch: lease.epoch, leaseExpiresAt: lease.leaseExpiresAt });
  });

  it('refuses to start over a corrupt state file, naming it (exit 1)', async () => {
    const data = scratchDir('corrupt');
    cleanups.push(data.remove);
    const { proc } = await start(data.dir);
    await killProcess(proc.child, 'SIGTERM');
    const stateFile = path.join(data.dir, 'state.json');

    writeFileSync(stateFile, '{"format": 1, "clusters": {');
    const broken = await execa(process.execPath, [AGENT_ENTRY, 'controller', 'serve', '--data-dir', data.dir, '--listen', '127.0.0.1:0'], {
      reject: false,
      timeout: 20_000,
    });
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toContain(stateFile);
    expect(broken.stderr).toContain('corrupt');

    writeFileSync(stateFile, JSON.stringify({ journalSeq: 0, state: { format: 2, adminTokenId: 'x', clusters: { a: { id: 5 } } } }));
    const invalid = await execa(process.execPath, [AGENT_ENTRY, 'controller', 'serve', '--data-dir', data.dir, '--listen', '127.0.0.1:0'], {
      reject: false,
      timeout: 20_000,
    });
    expect(invalid.exitCode).toBe(1);
    expect(invalid.stderr).toContain(stateFile);
    expect(invalid.stderr).toContain('clusters.a.id');
  });

  it('shuts down cleanly on SIGTERM: long-polls answer, the process exits 0', async () => {
    const data = scratchDir('sigterm');
    cleanups.push(data.remove);
    const { proc, admin } = await start(data.dir);
    const cluster = await admin.createCluster({ ...CLUSTER_DEFAULTS, name: 'term' });
    const worker = createNodeClient(agentConfigOf(await admin.nodeConfig(cluster.id, { name: 'w1', role: 'worker' })), { retry: NO_RETRY });
    cleanups.push(() => worker.close());
    const waiting = worker.join({}, { waitSeconds: 60 }).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    const code = await killProcess(proc.child, 'SIGTERM');
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    const answer = await waiting;
    expect(answer).toBeInstanceOf(ControllerRequestError);
    expect((answer as ControllerRequestError).context.status).toBe(503);
    expect(existsSync(path.join(data.dir, 'controller.pid'))).toBe(false);
    expect(proc.stderr()).toContain('controller.stopped');
  });

  it('refuses a second controller on the same data dir', async () => {
    const data = scratchDir('locked');
    cleanups.push(data.remove);
    const { proc } = await start(data.dir);
    const second = await execa(process.execPath, [AGENT_ENTRY, 'controller', 'serve', '--data-dir', data.dir, '--listen', '127.0.0.1:0'], {
      reject: false,
      timeout: 20_000,
    });
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(`pid ${proc.child.pid}`);
  });
});
