import { CommandError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { isAbsent } from './encoding.ts';

/**
 * How guestinfo keys reach the agent. Like cloud-init's VMware datasource: the environment
 * (`VMX_GUESTINFO=1`, `VMX_GUESTINFO_<KEY>`), then `vmware-rpctool`, then `vmtoolsd --cmd`.
 * Everything about rpctool's exit codes and messages stays in this module.
 */

export type TransportName = 'vmware-rpctool' | 'vmtoolsd' | 'environment';

export type GuestinfoRead =
  | { kind: 'value'; value: string }
  /** The key is not set (or holds an "absent" marker). */
  | { kind: 'absent' }
  /** This transport cannot work here: not on VMware, tools not installed, VMX_GUESTINFO unset. */
  | { kind: 'unavailable'; reason: string }
  /** The transport should have worked and did not (for example `Permission denied`). */
  | { kind: 'error'; reason: string };

export interface GuestinfoTransport {
  readonly name: TransportName;
  get(key: string): Promise<GuestinfoRead>;
  set(key: string, value: string): Promise<void>;
}

const NO_VALUE = 'No value found';
const NOT_ON_VMWARE_EXIT = 255;

/** A transport that runs one of the VMware tools with an RPC command such as `info-get guestinfo.KEY`. */
function toolsTransport(host: Host, name: 'vmware-rpctool' | 'vmtoolsd'): GuestinfoTransport {
  const argv = (rpc: string) => (name === 'vmtoolsd' ? ['--cmd', rpc] : [rpc]);
  return {
    name,
    async get(key) {
      let result;
      try {
        result = await host.run(name, argv(`info-get guestinfo.${key}`), { okExitCodes: [1, NOT_ON_VMWARE_EXIT], timeoutMs: 10_000 });
      } catch (error) {
        if (error instanceof CommandError && error.context.exitCode === undefined && /not found on PATH/.test(error.message)) {
          return { kind: 'unavailable', reason: `${name} is not installed` };
        }
        return { kind: 'error', reason: error instanceof Error ? error.message : String(error) };
      }
      const stderr = result.stderr.trim();
      if (result.exitCode === NOT_ON_VMWARE_EXIT) return { kind: 'unavailable', reason: 'not running on VMware' };
      if (result.exitCode === 1) {
        if (stderr.includes(NO_VALUE)) return { kind: 'absent' };
        // Off VMware, vmtoolsd exits 1 and says nothing (rpctool says so and exits 255).
        if (!stderr && name === 'vmtoolsd')
          return { kind: 'unavailable', reason: 'not running on VMware (vmtoolsd exited 1 with no message)' };
        return { kind: 'error', reason: `${name} exited 1${stderr ? `: ${stderr.split('\n').pop()}` : ' with no message'}` };
      }
      return { kind: 'value', value: result.stdout.replace(/\s+$/, '') };
    },
    async set(key, value) {
      // The value is part of one RPC string; never log it (displayArgs).
      await host.run(name, argv(`info-set guestinfo.${key} ${value}`), { timeoutMs: 10_000, displayArgs: [`info-set guestinfo.${key} …`] });
    },
  };
}

/** The environment transport: cloud-init reads `VMX_GUESTINFO_<KEY>` when `VMX_GUESTINFO` is set. */
export function environmentTransport(env: NodeJS.ProcessEnv): GuestinfoTransport {
  const variable = (key: string) => `VMX_GUESTINFO_${key.toUpperCase().replace(/\./g, '_')}`;
  return {
    name: 'environment',
    async get(key) {
      if (!env.VMX_GUESTINFO) return { kind: 'unavailable', reason: 'VMX_GUESTINFO is not set' };
      const value = env[variable(key)];
      return value === undefined ? { kind: 'absent' } : { kind: 'value', value };
    },
    async set(key, value) {
      // The environment of the VM's launcher cannot be changed from here; forget it in this process.
      env[variable(key)] = value;
    },
  };
}

export function vmwareTransports(host: Host): GuestinfoTransport[] {
  return [toolsTransport(host, 'vmware-rpctool'), toolsTransport(host, 'vmtoolsd')];
}

export type GuestinfoLookup =
  | { found: true; value: string; encoding: string | undefined; transport: GuestinfoTransport }
  | { found: false; notes: string[]; failed: boolean };

/**
 * Reads one key (and its `.encoding`) through the first transport that has it. When one VMware
 * tool answers that the key is not set, the other is not asked: it would say the same.
 */
export async function lookupGuestinfo(transports: GuestinfoTransport[], key: string): Promise<GuestinfoLookup> {
  const notes: string[] = [];
  let failed = false;
  let toolsAnswered = false;
  for (const transport of transports) {
    const isTool = transport.name !== 'environment';
    if (isTool && toolsAnswered) continue;
    const read = await transport.get(key);
    if (read.kind === 'value' && !isAbsent(read.value)) {
      const encoding = await transport.get(`${key}.encoding`);
      const encodingValue = encoding.kind === 'value' && !isAbsent(encoding.value) ? encoding.value : undefined;
      return { found: true, value: read.value, encoding: encodingValue, transport };
    }
    if (read.kind === 'value' || read.kind === 'absent') {
      notes.push(`${transport.name}: guestinfo.${key} is not set`);
      toolsAnswered ||= isTool;
    } else {
      notes.push(`${transport.name}: ${read.reason}`);
      failed ||= read.kind === 'error';
    }
  }
  return { found: false, notes, failed };
}
