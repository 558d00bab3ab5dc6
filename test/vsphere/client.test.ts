import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VsphereClient } from '../../agent/controller/vsphere/client.ts';
import { inspectVm } from '../image/simulator.ts';
import { type SimulatorFixture, startSimulatorFixture, vsphereSkip } from './simulator-fixture.ts';

/** The vSphere client against govmomi's vCenter simulator; every VM is read back through the simulator's own Go client. */
describe.skipIf(vsphereSkip)('vSphere client against the vCenter simulator', () => {
  let fx: SimulatorFixture;
  let client: VsphereClient;

  beforeAll(async () => {
    fx = await startSimulatorFixture();
    client = await VsphereClient.connect(fx.connection);
  }, 120_000);
  afterAll(async () => {
    await client?.close();
    await fx?.stop();
  });

  async function placement() {
    return {
      template: await client.mustFind('vm', 'DC0_H0_VM0', 'template'),
      folder: await client.mustFind('folder', '', 'folder'),
      pool: await client.resourcePool('DC0_C0'),
      datastore: await client.mustFind('datastore', 'LocalDS_0', 'datastore'),
    };
  }

  it('clones with ExtraConfig, sets CPUs, memory, disk and network, powers on, and destroys', async () => {
    const where = await placement();
    const vm = await client.cloneVm({
      ...where,
      name: 'clone-a',
      extraConfig: { 'guestinfo.pke.config': 'H4sI&<>', 'guestinfo.pke.config.encoding': 'gzip+base64' },
    });
    const network = await client.mustFind('network', 'DC0_DVPG0', 'network');
    await client.reconfigure(vm, { cpus: 4, memoryMiB: 6144, diskGiB: 30, network: { moref: network, name: 'DC0_DVPG0' } }, 'clone-a');
    await client.powerOn(vm, 'clone-a');

    const seen = await inspectVm(fx.sim, '/DC0/vm/clone-a');
    expect(seen).toMatchObject({ name: 'clone-a', template: false, powerState: 'poweredOn', numCPU: 4, memoryMB: 6144 });
    expect(seen.diskKB).toEqual([30 * 1024 * 1024]);
    expect(seen.networks).toContain('DC0_DVPG0');
    expect(seen.extraConfig['guestinfo.pke.config']).toBe('H4sI&<>');
    expect(seen.extraConfig['guestinfo.pke.config.encoding']).toBe('gzip+base64');

    const info = await client.vmInfo(vm);
    expect(info.biosUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(info.powerState).toBe('poweredOn');
    expect((await client.vmsIn(where.folder)).get('clone-a')).toEqual(vm);

    await client.powerOff(vm, 'clone-a');
    await client.destroy(vm, 'clone-a');
    expect(await client.find('vm', 'clone-a')).toBeUndefined();
  });

  it('reads a key set again as its last value (what a guest redaction leaves)', async () => {
    const where = await placement();
    const vm = await client.cloneVm({ ...where, name: 'clone-b', extraConfig: { 'guestinfo.userdata': 'secret' } });
    await client.reconfigure(vm, { extraConfig: { 'guestinfo.userdata': '---' } }, 'clone-b');
    expect((await client.vmInfo(vm)).extraConfig.get('guestinfo.userdata')).toBe('---');
    await client.destroy(vm, 'clone-b');
  });

  it('names the call, the object and the fault type when a task fails', async () => {
    const vm = await client.mustFind('vm', 'DC0_H0_VM1', 'VM');
    await client.powerOn(vm, 'DC0_H0_VM1').catch(() => undefined);
    await expect(client.powerOn(vm, 'DC0_H0_VM1')).rejects.toThrow(/^vSphere PowerOnVM_Task on VM DC0_H0_VM1: InvalidPowerState/);
    await expect(client.destroy(vm, 'DC0_H0_VM1')).rejects.toThrow(/^vSphere Destroy_Task on VM DC0_H0_VM1: InvalidPowerState/);
  });

  it('names a missing template, datastore or folder with its inventory path', async () => {
    await expect(client.mustFind('vm', 'no-such-template', 'template')).rejects.toThrow(
      'vSphere: template /DC0/vm/no-such-template not found',
    );
    await expect(client.mustFind('datastore', 'NoDS', 'datastore')).rejects.toThrow('vSphere: datastore /DC0/datastore/NoDS not found');
    await expect(client.resourcePool('NoCluster')).rejects.toThrow('vSphere: resource pool or cluster /DC0/host/NoCluster not found');
  });

  it("refuses wrong credentials with vSphere's InvalidLogin", async () => {
    await expect(VsphereClient.connect({ ...fx.connection, password: 'wrong' })).rejects.toThrow(
      /^vSphere Login on user pke@vsphere\.local: InvalidLogin: /,
    );
  });

  it('logs in again when vCenter ended the session', async () => {
    const other = await VsphereClient.connect(fx.connection);
    await other.logout();
    expect(await other.find('vm', 'DC0_H0_VM0')).toBeDefined();
    await other.close();
  });

  it('verifies TLS: another CA is refused, a pinned fingerprint is taken, a wrong one named', async () => {
    await expect(VsphereClient.connect({ ...fx.connection, tls: {} })).rejects.toThrow(
      /RetrieveServiceContent on vCenter: https:\/\/127\.0\.0\.1:\d+: .*certificate/i,
    );
    const served = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: fx.host, port: fx.port, rejectUnauthorized: false }, () => {
        resolve(new X509Certificate(socket.getPeerCertificate().raw).fingerprint256);
        socket.end();
      });
      socket.once('error', reject);
    });
    const pinned = await VsphereClient.connect({ ...fx.connection, tls: { thumbprint: served } });
    await pinned.close();
    const wrong = `${'AB:'.repeat(31)}AB`;
    await expect(VsphereClient.connect({ ...fx.connection, tls: { thumbprint: wrong } })).rejects.toThrow(
      `its certificate's fingerprint is ${served}, not ${wrong}`,
    );
  });
});
