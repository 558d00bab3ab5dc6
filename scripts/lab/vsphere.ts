// The lab's vCenter: govmomi's simulator (test/image/vcsim) in the controller's namespace, listening
// on the controller's address so that the controller provisions through it and every lab VM's
// guestinfo stand-in (test/standins/vsphere-guest-standin.ts) reaches it across the lab's bridge.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { startSimulatorFixture } from '../../test/vsphere/simulator-fixture.ts';
import type { LabHost } from './network.ts';

const SIMULATOR_PORT = 8989;
const GUEST_SCRIPT = path.resolve(import.meta.dirname, '../../test/standins/vmware/vsphere-guest');

export interface LabVsphere {
  host: string;
  port: number;
  username: string;
  passwordFile: string;
  caFile: string;
  guestScript: string;
  /** The environment of the guestinfo stand-in for one VM. */
  guestEnvironment(moref: string): Record<string, string>;
  /** Powered-on VMs, asked of the simulator's API. */
  list(): Promise<{ name: string; moref: string; biosUuid: string }[]>;
  /** A VM's ExtraConfig as an admin with govc would see it. */
  extraConfig(name: string): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

export async function startLabVsphere(workDir: string, controller: LabHost): Promise<LabVsphere> {
  const fx = await startSimulatorFixture({
    listen: `${controller.ip}:${SIMULATOR_PORT}`,
    prefix: ['ip', 'netns', 'exec', controller.namespace],
  });
  const passwordFile = path.join(workDir, 'vcenter-password');
  const caFile = path.join(workDir, 'vcenter-ca.crt');
  writeFileSync(passwordFile, fx.connection.password, { mode: 0o600 });
  writeFileSync(caFile, fx.caPem);
  const environment = (moref = ''): Record<string, string> => ({
    PKE_VSPHERE_SERVER: `${fx.host}:${fx.port}`,
    PKE_VSPHERE_USER: fx.connection.username,
    PKE_VSPHERE_PASSWORD: fx.connection.password,
    PKE_VSPHERE_CA: caFile,
    PKE_VSPHERE_VM: moref,
  });
  const admin = async (args: string[]) => {
    const result = await execa('ip', ['netns', 'exec', controller.namespace, GUEST_SCRIPT, ...args], {
      env: environment(),
      reject: false,
    });
    if (result.exitCode !== 0)
      throw new Error(`vsphere-guest ${args.join(' ')} exited ${result.exitCode}: ${String(result.stderr).trim()}`);
    return JSON.parse(String(result.stdout));
  };
  return {
    host: fx.host,
    port: fx.port,
    username: fx.connection.username,
    passwordFile,
    caFile,
    guestScript: GUEST_SCRIPT,
    guestEnvironment: (moref) => ({ ...environment(moref), PKE_RPCTOOL_MODE: 'vsphere' }),
    list: () => admin(['list']),
    extraConfig: (name) => admin(['extra-config', name]),
    stop: () => fx.stop(),
  };
}
