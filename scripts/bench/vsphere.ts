// Provisioning throughput against govmomi's vCenter simulator, our vSphere client beside govc
// (built from the govmomi module of the simulator's version): 50 clones of the template, each with
// a node's guestinfo in ExtraConfig, then powered on; both at 8 at a time, in one run on one simulator.
//   node scripts/bench/vsphere.ts [VMS]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { VsphereClient } from '../../agent/controller/vsphere/client.ts';
import { renderGuestinfo } from '../../agent/controller/node-config/guestinfo.ts';
import { clusterSpecSchema, type Guestinfo } from '../../agent/protocol/api.ts';
import { scratchDir } from '../../test/helpers/cli.ts';
import { govcBinary } from '../../test/image/govc.ts';
import { startSimulatorFixture } from '../../test/vsphere/simulator-fixture.ts';
import type { BenchSection } from '../bench.ts';

const PARALLEL = 8;

function guestinfoFor(name: string): Guestinfo {
  const spec = clusterSpecSchema.parse({ name: 'bench', kubernetesVersion: '1.31.2', controlPlaneEndpoint: { vip: '10.0.0.10' } });
  return renderGuestinfo({
    cluster: { id: 'bench-0000', name: 'bench', spec },
    node: name,
    role: 'worker',
    pool: 'workers',
    controller: {
      url: 'https://10.0.0.2:9443',
      caCert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      token: 'x'.repeat(400),
    },
  });
}

async function eachLimited(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

export async function measureVsphere(vms = 50): Promise<{ oursMs: number; govcMs: number; vms: number }> {
  const govc = await govcBinary();
  const fx = await startSimulatorFixture();
  const scratch = scratchDir('bench-vsphere');
  try {
    const caFile = path.join(scratch.dir, 'ca.pem');
    writeFileSync(caFile, fx.caPem);
    const env = {
      ...process.env,
      GOVC_URL: `https://${encodeURIComponent(fx.connection.username)}:${encodeURIComponent(fx.connection.password)}@${fx.host}:${fx.port}/sdk`,
      GOVC_TLS_CA_CERTS: caFile,
      GOVC_DATACENTER: 'DC0',
      HOME: scratch.dir,
    };
    const govcRun = async (args: string[]) => {
      const result = await execa(govc, args, { env, reject: false });
      if (result.exitCode !== 0) throw new Error(`govc ${args[0]} exited ${result.exitCode}: ${String(result.stderr).trim()}`);
    };
    // govc cannot give ExtraConfig to vm.clone: clone powered off, vm.change -e, vm.power -on (as node-config's govc lines do).
    const govcStarted = performance.now();
    await eachLimited(vms, async (i) => {
      const name = `govc-${i}`;
      await govcRun(['vm.clone', '-vm', 'DC0_H0_VM0', '-pool', 'DC0_C0/Resources', '-ds', 'LocalDS_0', '-on=false', name]);
      await govcRun(['vm.change', '-vm', name, ...Object.entries(guestinfoFor(name)).flatMap(([k, v]) => ['-e', `${k}=${v}`])]);
      await govcRun(['vm.power', '-on', name]);
    });
    const govcMs = performance.now() - govcStarted;

    const oursStarted = performance.now();
    const client = await VsphereClient.connect(fx.connection);
    try {
      const [template, folder, pool, datastore] = await Promise.all([
        client.mustFind('vm', 'DC0_H0_VM0', 'template'),
        client.mustFind('folder', '', 'folder'),
        client.resourcePool('DC0_C0'),
        client.mustFind('datastore', 'LocalDS_0', 'datastore'),
      ]);
      await eachLimited(vms, async (i) => {
        const name = `ours-${i}`;
        const vm = await client.cloneVm({ template, name, folder, pool, datastore, extraConfig: guestinfoFor(name) });
        await client.powerOn(vm, name);
      });
      const oursMs = performance.now() - oursStarted;
      // Both made what they were asked: every VM powered on with its guestinfo.
      for (const prefix of ['govc', 'ours']) {
        const info = await client.vmInfo(await client.mustFind('vm', `${prefix}-${vms - 1}`, 'VM'));
        if (info.powerState !== 'poweredOn' || !info.extraConfig.get('guestinfo.pke.config'))
          throw new Error(`${prefix}-${vms - 1} is ${info.powerState} without its guestinfo`);
      }
      return { oursMs, govcMs, vms };
    } finally {
      await client.close();
    }
  } finally {
    await fx.stop();
    scratch.remove();
  }
}

export async function benchVsphere(): Promise<BenchSection> {
  const result = await measureVsphere();
  return {
    name: 'vsphere',
    summary: `${result.vms} clones with guestinfo in ExtraConfig and power-on against the vCenter simulator, ${PARALLEL} at a time: our client vs govc`,
    metrics: [
      { name: 'our client', value: result.oursMs / 1000, unit: 's' },
      { name: 'govc', value: result.govcMs / 1000, unit: 's' },
      // Goal: no slower than govc.
      { name: 'our time / govc time', value: result.oursMs / result.govcMs, unit: 'x', max: 1 },
    ],
    details: { ...result, parallel: PARALLEL },
  };
}

if (import.meta.main) {
  const result = await measureVsphere(Number(process.argv[2] ?? 50));
  console.log(JSON.stringify(result));
}
