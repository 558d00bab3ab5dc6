import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { Host } from '../../agent/host/host.ts';

export const REPO = path.resolve(import.meta.dirname, '../..');
export const AGENT_ENTRY = path.join(REPO, 'agent/main.ts');
export const VMWARE_STANDINS = path.join(REPO, 'test/standins/vmware');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the agent from source (`node agent/main.ts ...`) as a separate process, as a user would run the CLI. */
export async function runAgent(
  args: string[],
  options: { env?: Record<string, string | undefined>; path?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, PKE_ROOT: undefined, VMX_GUESTINFO: undefined, ...options.env };
  if (options.path !== undefined) env.PATH = options.path;
  const result = await execa(process.execPath, [AGENT_ENTRY, ...args], {
    env,
    extendEnv: false,
    reject: false,
    timeout: options.timeoutMs ?? 60_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** A scratch directory removed by the returned function. */
export function scratchDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `pke-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ScratchHost {
  dir: string;
  /** The host adapter with the scratch directory as its root. */
  host: Host;
  remove: () => void;
}

/** A scratch directory as a node's root, and the host adapter pointed at it. */
export function scratchHost(prefix: string): ScratchHost {
  const scratch = scratchDir(prefix);
  return { ...scratch, host: new Host({ root: scratch.dir }) };
}

/** PATH with the given directories first, then the system's (without node_modules/.bin when asked). */
export function searchPath(first: string[], options: { withNode?: boolean } = {}): string {
  const system = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const node = options.withNode === false ? [] : [path.dirname(process.execPath)];
  return [...first, ...node, ...system].join(path.delimiter);
}
