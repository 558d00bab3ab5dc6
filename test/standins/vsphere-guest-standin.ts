// STAND-IN for the guest side of VMware Tools' guestinfo channel, for the lab's --vsphere mode
// only: where a real VM's vmware-rpctool talks to its hypervisor, this talks to the vCenter
// simulator's API for the VM named in the environment. `info-get` reads the VM's ExtraConfig,
// `info-set` reconfigures it, so what the agent reads and redacts really travels through vSphere.
//   vsphere-guest rpc "info-get guestinfo.KEY" | "info-set guestinfo.KEY VALUE"
//   vsphere-guest cloud-init      acts out cloud-init's VMware datasource redaction (metadata's `redact`)
//   vsphere-guest set-ip IP       what VMware Tools reports as the guest's IP
// The lab's admin side (same file, run in the controller's namespace):
//   vsphere-guest list            powered-on VMs: [{name, moref, biosUuid}]
//   vsphere-guest extra-config NAME
// Environment: PKE_VSPHERE_SERVER (host:port), PKE_VSPHERE_USER, PKE_VSPHERE_PASSWORD, PKE_VSPHERE_CA (file),
// PKE_VSPHERE_VM (the VM's managed object id, for the guest commands).
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { VsphereClient } from '../../agent/controller/vsphere/client.ts';
import { VsphereFault, type Moref } from '../../agent/controller/vsphere/soap.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`vsphere-guest: ${name} is not set\n`);
    process.exit(64);
  }
  return value;
};

/** cloud-init's rule: empty, white space or `---` is no value. */
const absent = (value: string | undefined) => value === undefined || value.trim() === '' || value.trim() === '---';

async function main(args: string[]): Promise<number> {
  const [server, port] = env('PKE_VSPHERE_SERVER').split(':');
  const client = await VsphereClient.connect({
    server: server!,
    port: Number(port),
    username: env('PKE_VSPHERE_USER'),
    password: env('PKE_VSPHERE_PASSWORD'),
    datacenter: 'DC0',
    tls: { ca: readFileSync(env('PKE_VSPHERE_CA'), 'utf8') },
  });
  try {
    const self = (): Moref => ({ type: 'VirtualMachine', value: env('PKE_VSPHERE_VM') });
    const get = async (key: string) => (await client.vmInfo(self())).extraConfig.get(key);
    const set = (key: string, value: string) => client.reconfigure(self(), { extraConfig: { [key]: value } });
    switch (args[0]) {
      case 'rpc': {
        const rpc = args[1] ?? '';
        const getKey = rpc.match(/^info-get (guestinfo\.\S+)$/)?.[1];
        if (getKey) {
          const value = await get(getKey);
          if (value === undefined) {
            process.stderr.write('No value found\n');
            return 1;
          }
          process.stdout.write(`${value}\n`);
          return 0;
        }
        const setMatch = rpc.match(/^info-set (guestinfo\.\S+) ([\s\S]*)$/);
        if (setMatch) {
          await set(setMatch[1]!, setMatch[2]!);
          return 0;
        }
        process.stderr.write('Unknown command\n');
        return 1;
      }
      case 'cloud-init': {
        const metadata = await get('guestinfo.metadata');
        if (absent(metadata)) return 0;
        const encoding = await get('guestinfo.metadata.encoding');
        const text = encoding === 'gzip+base64' ? gunzipSync(Buffer.from(metadata!, 'base64')).toString() : metadata!;
        const redact = (JSON.parse(text) as { redact?: string[] }).redact ?? [];
        for (const key of redact) {
          if ((await get(`guestinfo.${key}`)) === undefined) continue;
          await client.reconfigure(self(), { extraConfig: { [`guestinfo.${key}`]: '---', [`guestinfo.${key}.encoding`]: ' ' } });
        }
        return 0;
      }
      case 'set-ip':
        await client.reconfigure(self(), { extraConfig: { 'SET.guest.ipAddress': args[1] ?? '' } });
        return 0;
      case 'list': {
        process.stdout.write(`${JSON.stringify(await poweredOnVms(client))}\n`);
        return 0;
      }
      case 'extra-config': {
        const info = await client.vmInfo(await client.mustFind('vm', args[1] ?? '', 'VM'));
        process.stdout.write(`${JSON.stringify(Object.fromEntries(info.extraConfig))}\n`);
        return 0;
      }
      default:
        process.stderr.write(`vsphere-guest: unknown command ${args[0] ?? ''}\n`);
        return 64;
    }
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`vsphere-guest: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);

/**
 * The powered-on VMs of the datacenter's VM folder. A VM destroyed between the listing and a look
 * at it (a replacement or a shrink under way) fails the look: the listing is made again, a few times.
 */
async function poweredOnVms(client: VsphereClient): Promise<{ name: string; moref: string; biosUuid: string }[]> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const out = [];
      for (const [name, moref] of await client.vmsIn(await client.mustFind('folder', '', 'folder'))) {
        const info = await client.vmInfo(moref);
        if (info.powerState === 'poweredOn') out.push({ name, moref: moref.value, biosUuid: info.biosUuid });
      }
      return out;
    } catch (error) {
      if (!(error instanceof VsphereFault && error.faultType === 'ManagedObjectNotFound') || attempt >= 5) throw error;
    }
  }
}
