import { createHash } from 'node:crypto';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { REPO } from '../helpers/cli.ts';

export const PACKER_DIR = path.join(REPO, 'packer');

/**
 * Built simulators and the Debian root file system survive between runs (CI runs in a fresh
 * clone on the same machine), outside the repository.
 */
export function cacheDir(sub: string): string {
  const base = isRoot() ? '/var/cache/pke-agent' : path.join(tmpdir(), 'pke-agent-cache');
  const dir = path.join(base, sub);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function sha256(...parts: (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/** The first of these files that exists and is executable, or the first missing one's name for a skip reason. */
export function findExecutable(candidates: string[]): string | undefined {
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** A command on the system PATH (plus the sbin directories, which a non-login root shell may lack). */
export function systemCommand(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return findExecutable(dirs.filter(Boolean).map((dir) => path.join(dir, name)));
}

export interface Ran {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved, for assertion messages. */
  all: string;
}

export async function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<Ran> {
  const result = await execa(command, args, {
    cwd: options.cwd,
    env: options.env,
    input: options.input,
    timeout: options.timeoutMs ?? 120_000,
    reject: false,
    all: true,
    stripFinalNewline: false,
  });
  return {
    exitCode: result.exitCode ?? -1,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    all: String(result.all ?? '') + (result.timedOut ? `\n(timed out after ${options.timeoutMs ?? 120_000} ms)` : ''),
  };
}

/** Runs a command and throws, with its output tail, unless it exits 0. */
export async function runOk(command: string, args: string[], options: Parameters<typeof run>[2] = {}): Promise<Ran> {
  const result = await run(command, args, options);
  if (result.exitCode !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.exitCode}:\n${tailOf(result.all)}`);
  }
  return result;
}

export function tailOf(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** `describe` title carrying the reason when the suite is skipped, so a skip is never silent. */
export function titled(title: string, skipReason: string | undefined): string {
  if (skipReason) console.warn(`SKIPPED ${title}: ${skipReason}`);
  return skipReason ? `${title} [SKIPPED: ${skipReason}]` : title;
}
