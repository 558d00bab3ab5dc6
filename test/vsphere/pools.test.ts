import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import YAML from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../agent/config/schema.ts';
import { silentLogger } from '../../agent/core/log.ts';
import { type RunningController, startController } from '../../agent/controller/controller.ts';
import { VsphereClient } from '../../agent/controller/vsphere/client.ts';
import type { ClusterSpecInput, ClusterStatus, Placement } from '../../agent/protocol/api.ts';
import { AdminClient, createNodeClient } from '../../agent/protocol/client.ts';
import { AGENT_ENTRY, scratchDir } from '../helpers/cli.ts';
import { inspectVm } from '../image/simulator.ts';
import { CLUSTER_DEFAULTS, NO_RETRY, registration } from '../controller/helpers.ts';
import { SIM_PASSWORD, type SimulatorFixture, startSimulatorFixture, vsphereSkip } from './simulator-fixture.ts';

/**
 * The controller provisions pools on the vCenter simulator: what it made is asked of the
 * simulator's API (its own Go client), not taken from the controller's word.
 */

// No disk size: the simulator (govmomi 0.24) now and then loses a clone's disk (FileNotFound) when
// several clones' disks are grown at once; the client's own test grows one (the same call).
const PLACEMENT: Placement = {
  template: 'DC0_H0_VM0',
  folder: '',
  resourcePool: 'DC0_C0',
  datastore: 'LocalDS_0',
  cpus: 2,
  memoryMiB: 4096,
};

describe.skipIf(vsphereSkip)('pools provisioned on the vCenter simulator', () => {
  let fx: SimulatorFixture;
  let vsphere: VsphereClient;
  const data = scratchDir('pools');
  let controller: RunningController | undefined;
  let admin: AdminClient | undefined;
  let clusters = 0;

  beforeAll(async () => {
    fx = await startSimulatorFixture();
    vsphere = await VsphereClient.connect(fx.connection);
  }, 120_000);
  afterEach(async () => {
    await admin?.close();
    await controller?.close();
    admin = undefined;
    controller = undefined;
  });
  afterAll(async () => {
    await vsphere?.close();
    await fx?.stop();
    data.remove();
  });

  async function start(dataDir = data.dir) {
    controller = await startController({
      dataDir,
      host: '127.0.0.1',
      port: 0,
      log: silentLogger,
      verifyStateTouches: true,
      provisioning: { intervalMs: 100, failedGraceMs: 0 },
    });
    admin = new AdminClient({
      url: controller.url,
      caCert: controller.caCertPem,
      token: (await readFile(controller.adminTokenFile, 'utf8')).trim(),
      retry: NO_RETRY,
    });
    return admin;
  }

  async function provisioned(spec: Partial<ClusterSpecInput> = {}, credentials: { password?: string } = {}) {
    const name = `p${++clusters}`;
    const client = admin!;
    await client.createCluster({
      ...CLUSTER_DEFAULTS,
      name,
      controlPlaneNodes: 1,
      controlPlanePlacement: PLACEMENT,
      pools: [{ name: 'workers', size: 2, placement: PLACEMENT }],
      provisioning: { maxReplacements: 1 },
      ...spec,
    });
    await client.setVsphere(name, { ...fx.credentials, password: credentials.password ?? SIM_PASSWORD });
    return name;
  }

  async function until(cluster: string, done: (status: ClusterStatus) => boolean, what: string): Promise<ClusterStatus> {
    let status = await admin!.status(cluster);
    for (let i = 0; i < 300 && !done(status); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      status = await admin!.status(cluster);
    }
    if (!done(status))
      throw new Error(
        `${what} did not happen: ${JSON.stringify(status.provisioning)} ${JSON.stringify(status.nodes.map((n) => [n.name, n.state, n.vm]))}`,
      );
    return status;
  }
  const failed = (status: ClusterStatus) =>
    status.provisioning?.error !== undefined && !status.provisioning.error.startsWith('no vCenter connection');
  const vmsOf = (status: ClusterStatus) => status.nodes.filter((n) => n.vm?.moref && n.state !== 'revoked');

  it('clones every VM with its hardware and its own guestinfo, powers it on and records its BIOS UUID', async () => {
    await start();
    const cluster = await provisioned();
    const status = await until(cluster, (s) => vmsOf(s).length === 3, 'three VMs');
    expect(status.provisioning?.pools).toEqual([
      { name: 'control-plane', size: 1, vms: 1 },
      { name: 'workers', size: 2, vms: 2 },
    ]);
    for (const node of vmsOf(status)) {
      const seen = await inspectVm(fx.sim, `/DC0/vm/${node.name}`);
      expect(seen).toMatchObject({ powerState: 'poweredOn', numCPU: 2, memoryMB: 4096 });
      expect(seen.extraConfig['guestinfo.pke.config.encoding']).toBe('gzip+base64');
      const config = agentConfigSchema.parse(
        YAML.parse(gunzipSync(Buffer.from(seen.extraConfig['guestinfo.pke.config']!, 'base64')).toString()),
      );
      expect(config).toMatchObject({ nodeName: node.name, role: node.role, pool: node.pool, cluster: { name: cluster } });
      expect(seen.extraConfig['guestinfo.userdata']).toBeDefined();
      const info = await vsphere.vmInfo({ type: 'VirtualMachine', value: node.vm!.moref });
      expect(node.vm!.biosUuid).toBe(info.biosUuid);
    }
    expect(status.nodes.map((n) => n.name).sort()).toEqual([`${cluster}-cp-1`, `${cluster}-workers-1`, `${cluster}-workers-2`]);

    // The guest's IP, once VMware Tools reports it (the simulator takes it as SET.guest.ipAddress).
    const cp = status.nodes.find((n) => n.role === 'master')!;
    await vsphere.reconfigure({ type: 'VirtualMachine', value: cp.vm!.moref }, { extraConfig: { 'SET.guest.ipAddress': '10.9.8.7' } });
    await until(cluster, (s) => s.nodes.find((n) => n.name === cp.name)?.vm?.ip === '10.9.8.7', 'the guest IP in status');
  });

  it('refuses a register from a VM whose BIOS UUID is not the one it cloned for that name', async () => {
    await start();
    const cluster = await provisioned({ pools: [{ name: 'workers', size: 1, placement: PLACEMENT }] });
    const status = await until(cluster, (s) => vmsOf(s).length === 2, 'two VMs');
    const worker = status.nodes.find((n) => n.role === 'worker')!;
    const seen = await inspectVm(fx.sim, `/DC0/vm/${worker.name}`);
    const config = agentConfigSchema.parse(
      YAML.parse(gunzipSync(Buffer.from(seen.extraConfig['guestinfo.pke.config']!, 'base64')).toString()),
    );
    const node = createNodeClient(config, { retry: NO_RETRY });
    try {
      await expect(node.register({ ...registration(worker.name), uuid: 'imposter-0000' })).rejects.toThrow(
        `node ${worker.name} is the VM ${worker.vm!.moref} the controller cloned, BIOS UUID ${worker.vm!.biosUuid}; this VM has imposter-0000`,
      );
      const registered = await node.register({ ...registration(worker.name), uuid: worker.vm!.biosUuid.toUpperCase() });
      expect(registered.state).toBe('registered');
    } finally {
      await node.close();
    }
  });

  it('grows a pool by cloning and shrinks it by revoking and destroying the highest-numbered workers', async () => {
    await start();
    const cluster = await provisioned();
    await until(cluster, (s) => vmsOf(s).length === 3, 'three VMs');
    await admin!.scalePool(cluster, { pool: 'workers', size: 4 });
    await until(cluster, (s) => vmsOf(s).filter((n) => n.role === 'worker').length === 4, 'four workers');
    expect((await inspectVm(fx.sim, `/DC0/vm/${cluster}-workers-4`)).powerState).toBe('poweredOn');

    await admin!.scalePool(cluster, { pool: 'workers', size: 1 });
    const shrunk = await until(cluster, (s) => vmsOf(s).filter((n) => n.role === 'worker').length === 1, 'one worker');
    expect(
      shrunk.nodes
        .filter((n) => n.state === 'revoked')
        .map((n) => n.name)
        .sort(),
    ).toEqual([2, 3, 4].map((i) => `${cluster}-workers-${i}`));
    for (const i of [2, 3, 4]) expect(await vsphere.find('vm', `${cluster}-workers-${i}`)).toBeUndefined();
    expect(await vsphere.find('vm', `${cluster}-workers-1`)).toBeDefined();

    await expect(admin!.scalePool(cluster, { pool: 'control-plane', size: 0 })).rejects.toThrow(
      /control plane is not scaled by provisioning/,
    );
    await expect(admin!.scalePool(cluster, { pool: 'gpu', size: 1 })).rejects.toThrow(/has no pool gpu/);
  });

  it('adopts a VM cloned before a restart instead of cloning it again', async () => {
    const dir = scratchDir('pools-restart');
    try {
      const client = await start(dir.dir);
      // Cloned with its guestinfo, but not recorded: as a controller stopped between clone and record leaves it.
      const cluster = `p${++clusters}`;
      await client.createCluster({
        ...CLUSTER_DEFAULTS,
        name: cluster,
        controlPlaneNodes: 1,
        controlPlanePlacement: PLACEMENT,
        pools: [{ name: 'workers', size: 1, placement: PLACEMENT }],
        provisioning: {},
      });
      const rendered = await client.nodeConfig(cluster, { name: `${cluster}-workers-1`, role: 'worker' });
      const template = await vsphere.mustFind('vm', 'DC0_H0_VM0', 'template');
      const early = await vsphere.cloneVm({
        template,
        name: `${cluster}-workers-1`,
        folder: await vsphere.mustFind('folder', '', 'folder'),
        pool: await vsphere.resourcePool('DC0_C0'),
        extraConfig: rendered.guestinfo,
      });
      await controller!.close();
      await client.close();
      controller = undefined;
      await start(dir.dir);
      await admin!.setVsphere(cluster, fx.credentials);
      const status = await until(cluster, (s) => vmsOf(s).length === 2, 'two VMs');
      expect(status.nodes.find((n) => n.name === `${cluster}-workers-1`)?.vm?.moref).toBe(early.value);
      expect((await inspectVm(fx.sim, `/DC0/vm/${cluster}-workers-1`)).powerState).toBe('poweredOn');

      // Another restart: nothing is cloned again.
      const before = [...(await vsphere.vmsIn(await vsphere.mustFind('folder', '', 'folder'))).keys()].sort();
      await controller!.close();
      await admin!.close();
      controller = undefined;
      await start(dir.dir);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const after = [...(await vsphere.vmsIn(await vsphere.mustFind('folder', '', 'folder'))).keys()].sort();
      expect(after).toEqual(before);
    } finally {
      await admin?.close();
      await controller?.close();
      admin = undefined;
      controller = undefined;
      dir.remove();
    }
  });

  it('destroys and replaces a worker that reports a failed phase, and gives up after maxReplacements', async () => {
    await start();
    const cluster = await provisioned({ pools: [{ name: 'workers', size: 1, placement: PLACEMENT }] });
    const fail = async () => {
      const status = await until(cluster, (s) => vmsOf(s).some((n) => n.role === 'worker'), 'a worker VM');
      const worker = status.nodes.find((n) => n.role === 'worker' && n.state !== 'revoked')!;
      const seen = await inspectVm(fx.sim, `/DC0/vm/${worker.name}`);
      const config = agentConfigSchema.parse(
        YAML.parse(gunzipSync(Buffer.from(seen.extraConfig['guestinfo.pke.config']!, 'base64')).toString()),
      );
      const node = createNodeClient(config, { retry: NO_RETRY });
      await node.register({ ...registration(worker.name), uuid: worker.vm!.biosUuid });
      await node.events({
        events: [{ phase: 'host-prep', type: 'fail', at: new Date().toISOString(), attempt: 3, message: 'containerd did not start' }],
      });
      await node.close();
      return worker.vm!.moref;
    };
    const first = await fail();
    const replaced = await until(
      cluster,
      (s) => s.nodes.some((n) => n.role === 'worker' && n.vm?.replacements === 1 && n.vm.moref !== '' && n.vm.moref !== first),
      'a replacement',
    );
    expect(await vsphere.vmInfo({ type: 'VirtualMachine', value: first }).catch((e: Error) => e.message)).toMatch(/ManagedObjectNotFound/);
    const second = replaced.nodes.find((n) => n.role === 'worker')!;
    expect(second.state).toBe('pending');

    await fail();
    const gaveUp = await until(cluster, (s) => s.nodes.some((n) => n.vm?.error !== undefined), 'giving up');
    expect(gaveUp.nodes.find((n) => n.role === 'worker')?.vm?.error).toMatch(
      /^gave up after 1 replacements: phase host-prep failed: .*containerd did not start$/,
    );
  });

  it('names the fault when the template is missing or the credentials are wrong', async () => {
    await start();
    const missing = await provisioned({
      controlPlanePlacement: { ...PLACEMENT, template: 'no-such-template' },
      pools: [{ name: 'workers', size: 0 }],
    });
    const a = await until(missing, failed, 'an error');
    expect(a.provisioning?.error).toBe(`${missing}-cp-1: vSphere: template /DC0/vm/no-such-template not found`);

    const badDatastore = await provisioned({
      controlPlanePlacement: { ...PLACEMENT, datastore: 'NoDS' },
      pools: [{ name: 'workers', size: 0 }],
    });
    const b = await until(badDatastore, failed, 'an error');
    expect(b.provisioning?.error).toBe(`${badDatastore}-cp-1: vSphere: datastore /DC0/datastore/NoDS not found`);

    const denied = await provisioned({}, { password: 'wrong' });
    const c = await until(denied, failed, 'an error');
    expect(c.provisioning?.error).toMatch(/^vSphere Login on user pke@vsphere\.local: InvalidLogin: /);
    expect(JSON.stringify(c)).not.toContain('wrong');
  });

  it('refuses bad pool specs with exit 2 naming the key', async () => {
    const dir = scratchDir('pool-spec');
    const cli = async (spec: object) => {
      const file = `${dir.dir}/spec-${Math.random()}.json`;
      await import('node:fs/promises').then((fs) => fs.writeFile(file, JSON.stringify({ ...CLUSTER_DEFAULTS, ...spec })));
      const result = await execa(
        process.execPath,
        [AGENT_ENTRY, 'controller', 'cluster', 'create', '--file', file, '--provision', '--data-dir', dir.dir],
        {
          reject: false,
        },
      );
      return { exitCode: result.exitCode, stderr: String(result.stderr), file };
    };
    try {
      const noPlacement = await cli({ pools: [{ name: 'workers', size: 2 }], controlPlanePlacement: PLACEMENT });
      expect(noPlacement.exitCode).toBe(2);
      expect(noPlacement.stderr).toContain(`${noPlacement.file}: pools.0.placement: required for a pool the controller provisions`);
      const noControlPlane = await cli({ pools: [{ name: 'workers', size: 0 }] });
      expect(noControlPlane.exitCode).toBe(2);
      expect(noControlPlane.stderr).toContain('controlPlanePlacement: required when the controller provisions the VMs');
      const negative = await cli({ controlPlanePlacement: PLACEMENT, pools: [{ name: 'workers', size: -1, placement: PLACEMENT }] });
      expect(negative.exitCode).toBe(2);
      expect(negative.stderr).toContain('pools.0.size');
      const badCpus = await cli({ controlPlanePlacement: { ...PLACEMENT, cpus: 0 }, pools: [{ name: 'workers', size: 0 }] });
      expect(badCpus.exitCode).toBe(2);
      expect(badCpus.stderr).toContain('controlPlanePlacement.cpus');
    } finally {
      dir.remove();
    }
  });
});
