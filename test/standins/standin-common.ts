// Shared by the TypeScript stand-ins under test/standins (STAND-INS for tests only): the root
// they act under, their call log and their state files. Host sets PKE_ROOT for every child
// process; a stand-in refuses to run without it, so it can never touch the real /etc. The
// trivial stand-ins (modprobe, sysctl, swapoff, systemctl, containerd, kubelet) are sh scripts
// in bin/ that spare a Node start per call; each carries the same rules and writes this call
// log in this format, so a change here must be made there too.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Every call, one JSON object a line: {"time": ISO-8601, "tool": "kubeadm", "argv": [...]}. */
export const CALL_LOG = '/var/log/pke-standins/calls.jsonl';
/** Where stand-ins keep state that the real tools keep in the kernel or in systemd. */
export const STATE_DIR = '/var/lib/pke-standins';
/** The system's command directories, last on every PATH a stand-in run or a lab VM gets. */
export const SYSTEM_PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface CallRecord {
  time: string;
  tool: string;
  argv: string[];
}

export function root(): string {
  const value = process.env.PKE_ROOT;
  if (!value || /^\/+$/.test(value))
    exitWith(`${path.basename(process.argv[1] ?? 'stand-in')}: PKE_ROOT must name a scratch root (stand-ins never act on /)`, 2);
  return value;
}

/** The real location of a node path under PKE_ROOT. */
export function under(nodePath: string): string {
  return path.join(root(), nodePath);
}

export function recordCall(tool: string, argv: string[]): void {
  const file = under(CALL_LOG);
  mkdirSync(path.dirname(file), { recursive: true });
  const record: CallRecord = { time: new Date().toISOString(), tool, argv };
  appendFileSync(file, `${JSON.stringify(record)}\n`);
}

export function readNodeFile(nodePath: string): string | undefined {
  const file = under(nodePath);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

export function writeNodeFile(nodePath: string, content: string, mode = 0o644): void {
  const file = under(nodePath);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content, { mode });
}

export function exitWith(message: string, code: number): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}
