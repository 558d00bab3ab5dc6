import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const REPO = path.resolve(import.meta.dirname, '..');
const EXECUTABLE = path.join(REPO, 'dist/pke-agent');
const LOCK = path.join(REPO, 'dist/.build.lock');
/** What scripts/build.mjs reads: the agent (and the add-on pins it imports), itself and its helper scripts, the package manifest. */
const SOURCES = ['agent', 'addons/pins.json', 'scripts/build.mjs', 'package.json', 'package-lock.json', ...helperScripts()];
const LOCK_WAIT_MS = 10 * 60_000;

let building: Promise<string> | undefined;

/**
 * The path of dist/pke-agent, built with `npm run build` when it is missing, older than the
 * sources, or does not answer `version`. Safe to call from several test files at once: one
 * builds (holding a lock directory), the others wait and then find it fresh.
 */
export function ensureBuilt(): Promise<string> {
  building ??= buildIfStale().finally(() => {
    building = undefined;
  });
  return building;
}

async function buildIfStale(): Promise<string> {
  if (isFresh()) return EXECUTABLE;
  await withLockDir(LOCK, async () => {
    if (isFresh()) return;
    try {
      await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024, timeout: 5 * 60_000 });
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(`npm run build failed:\n${`${stdout}\n${stderr}`.trim().slice(-4000)}`);
    }
  });
  if (!isFresh()) throw new Error(`npm run build finished but ${EXECUTABLE} is still missing or older than its sources`);
  return EXECUTABLE;
}

function helperScripts(): string[] {
  try {
    return readdirSync(path.join(REPO, 'scripts'))
      .filter((f) => f.endsWith('.cjs'))
      .map((f) => `scripts/${f}`);
  } catch {
    return [];
  }
}

/** Newer than every source, and it runs: a build that died half-way leaves a fresh but broken file. */
function isFresh(): boolean {
  let built: number;
  try {
    built = statSync(EXECUTABLE).mtimeMs;
  } catch {
    return false;
  }
  if (!SOURCES.every((source) => newestMtime(path.join(REPO, source)) <= built)) return false;
  try {
    return execFileSync(EXECUTABLE, ['version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] }).startsWith(
      'pke-agent ',
    );
  } catch {
    return false;
  }
}

function newestMtime(file: string): number {
  let stats;
  try {
    stats = statSync(file);
  } catch {
    return 0;
  }
  if (!stats.isDirectory()) return stats.mtimeMs;
  let newest = stats.mtimeMs;
  for (const entry of readdirSync(file)) newest = Math.max(newest, newestMtime(path.join(file, entry)));
  return newest;
}

/**
 * Runs `work` while holding a lock directory (mkdir is atomic across processes); a lock whose
 * owner process died is taken over. Shared by the test helpers that fill caches.
 */
export async function withLockDir<T>(lock: string, work: () => Promise<T>, waitMs = LOCK_WAIT_MS): Promise<T> {
  mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (lockOwnerGone(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`waited ${waitMs / 1000}s for ${lock}; remove it if nothing is running`);
      await sleep(250);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function lockOwnerGone(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(lock, 'pid'), 'utf8'));
  } catch {
    // Just created by another process that has not written its pid yet, or already removed.
    try {
      return Date.now() - statSync(lock).mtimeMs > 5_000;
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
