import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabNode } from '../../scripts/lab/cluster.ts';
import { listNamespaces } from '../../scripts/lab/network.ts';
import { vsphereSkip } from '../vsphere/simulator-fixture.ts';
import { namespaceSkipReason, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * The lab's --vsphere mode end to end (stand-in tier): the controller provisions every VM on the
 * vCenter simulator, the lab boots what the simulator reports powered on, and each VM's agent
 * reads its config from the VM's ExtraConfig through the simulator's API. Afterwards ExtraConfig,
 * asked of vSphere, holds no secret; the workers scale up by two and down by one; a worker is
 * replaced by a new VM of the same name.
 */
const skip = (await namespaceSkipReason()) ?? vsphereSkip;
if (skip) console.warn(`e2e vSphere lab skipped: ${skip}`);

interface Status {
  nodes: { name: string; role: string; state: string; uuid?: string; vm?: { moref: string; biosUuid: string } }[];
}

describe.skipIf(skip)('a cluster the controller provisions on the vCenter simulator', () => {
  let s: ScenarioLab;
  const exits = new Map<string, Promise<number>>();
  const boot = (node: LabNode) =>
    exits.set(
      node.name,
      s.lab.startNode(node).then((r) => r.exitCode ?? -1),
    );
  const status = async () => (await s.lab.clusterStatus()) as unknown as Status;

  /** Syncs the lab's VMs with the simulator until `done`, failing as soon as a bootstrap fails. */
  async function until(done: (status: Status) => boolean, what: string): Promise<Status> {
    for (let i = 0; i < 400; i++) {
      await s.lab.syncVsphereVms(boot);
      const now = await status();
      if (done(now)) return now;
      for (const [name, exit] of exits) {
        const code = await Promise.race([exit, new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined)))]);
        if (code !== undefined && code !== 0) throw new Error(`${name}'s bootstrap exited ${code} while waiting for ${what}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    throw new Error(`${what} did not happen`);
  }
  const ready = (n: number) => (st: Status) => st.nodes.filter((node) => node.state === 'ready').length === n;

  beforeAll(async () => {
    s = await scenarioLab('vs', { masters: 1, workers: 1, vsphere: true });
    await until(ready(2), 'two ready nodes');
  }, 300_000);
  afterAll(() => s?.destroy(), 60_000);

  it("boots exactly the VMs the controller provisioned, each registering with its VM's BIOS UUID", async () => {
    const st = await status();
    expect(st.nodes.map((n) => n.name).sort()).toEqual(['lab-cp-1', 'lab-workers-1']);
    for (const node of st.nodes) expect(node.uuid).toBe(node.vm?.biosUuid);
    expect(s.lab.nodes.map((n) => n.name).sort()).toEqual(['lab-cp-1', 'lab-workers-1']);
  });

  it('leaves no secret in ExtraConfig: the agent config redacted, the user-data cleared, as an admin reading vSphere sees it', async () => {
    for (const node of s.lab.nodes) {
      const extra = await s.lab.vsphere!.extraConfig(node.name);
      expect(extra['guestinfo.pke.config']).toBe('---');
      expect(extra['guestinfo.pke.config.encoding']).toBe(' ');
      expect(extra['guestinfo.userdata']).toBe('---');
      expect(extra['guestinfo.metadata']).toMatch(/^H4sI/);
    }
  });

  it("scales the workers up by two and down by one; the destroyed VM's namespace goes with it", async () => {
    await s.lab.controllerCli(['pool', 'scale', '--cluster', s.lab.clusterName, '--pool', 'workers', '--size', '3']);
    await until(ready(4), 'four ready nodes');
    await s.lab.controllerCli(['pool', 'scale', '--cluster', s.lab.clusterName, '--pool', 'workers', '--size', '2']);
    const shrunk = await until(
      (st) => st.nodes.find((n) => n.name === 'lab-workers-3')?.state === 'revoked' && !s.lab.nodes.some((n) => n.name === 'lab-workers-3'),
      'lab-workers-3 gone',
    );
    expect(
      shrunk.nodes
        .filter((n) => n.state === 'ready')
        .map((n) => n.name)
        .sort(),
    ).toEqual(['lab-cp-1', 'lab-workers-1', 'lab-workers-2']);
    expect(
      (await s.lab.vsphere!.list())
        .map((vm) => vm.name)
        .filter((name) => name.startsWith('lab-'))
        .sort(),
    ).toEqual(['lab-cp-1', 'lab-workers-1', 'lab-workers-2']);
    expect(await listNamespaces(`${s.lab.options.prefix}lab-workers-3`)).toEqual([]);
  }, 240_000);

  it('replaces a worker: its VM destroyed, the same name Ready again on a new VM, registered with its BIOS UUID', async () => {
    const old = (await status()).nodes.find((n) => n.name === 'lab-workers-1')?.vm;
    expect(old).toBeDefined();
    let finished = false;
    const replacing = s.lab
      .controllerRun([
        'node',
        'replace',
        '--cluster',
        s.lab.clusterName,
        '--name',
        'lab-workers-1',
        '--timeout',
        '1m',
        '--ready-timeout',
        '3m',
      ])
      .finally(() => {
        finished = true;
      });
    await until(() => finished, 'node replace to return');
    const result = await replacing;
    expect(result.exitCode, result.stderr).toBe(0);
    const now = (await status()).nodes.find((n) => n.name === 'lab-workers-1');
    expect(now?.state).toBe('ready');
    expect(now?.vm?.moref).not.toBe(old?.moref);
    // govmomi's simulator derives a VM's BIOS UUID from its file path, so a clone of the same name
    // gets the old one back; real vSphere gives each clone a new one. The node registered with it.
    expect(now?.uuid).toBe(now?.vm?.biosUuid);
    expect(result.stdout.trim()).toBe(
      `node lab-workers-1: ready on VM ${now?.vm?.moref} (BIOS UUID ${now?.vm?.biosUuid}), replacing ${old?.moref}`,
    );
    // The removal's steps may end between two looks of the command (the name is then issued again at once); its end is logged.
    expect(result.stderr).toMatch(/node\.remove\.done node=lab-workers-1/);
    expect(result.stderr).toContain(`vm=${now?.vm?.moref}`);
    expect(result.stderr).toMatch(/node\.replace\.ready/);
    // In the simulator: the old VM is gone, one VM of that name is left, the new one.
    const vms = (await s.lab.vsphere!.list()).filter((vm) => vm.name === 'lab-workers-1');
    expect(vms.map((vm) => vm.moref)).toEqual([now?.vm?.moref]);
    expect(s.lab.nodes.filter((n) => n.name === 'lab-workers-1').map((n) => n.vsphereVm?.moref)).toEqual([now?.vm?.moref]);
  }, 300_000);
});
