import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { PkeError } from '../core/errors.ts';
import { LOCK_PATH, STATE_DIR } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';

/**
 * One bootstrap at a time per node: cloud-init, a rerun by hand and a systemd retry must not
 * interleave phases. A lock left by a process that died is taken over. Synchronous file calls,
 * as in the host adapter: a few small local files, without a thread-pool round trip each.
 */
export async function acquireBootstrapLock(host: Host): Promise<() => Promise<void>> {
  const file = host.file(LOCK_PATH);
  await host.ensureDir(STATE_DIR, 0o700);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return async () => {
        rmSync(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readPid(file));
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
        throw new PkeError(`another bootstrap is running (pid ${holder}, lock ${file}); wait for it or stop it`, {
          context: { path: file },
        });
      }
      rmSync(file, { force: true });
    }
  }
  throw new PkeError(`could not take the bootstrap lock ${file}`, { context: { path: file } });
}

function readPid(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
