import { open, readFile, rm } from 'node:fs/promises';
import { PkeError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';

export const LOCK_PATH = '/var/lib/pke-agent/bootstrap.lock';

/**
 * One bootstrap at a time per node: cloud-init, a rerun by hand and a systemd retry must not
 * interleave phases. A lock left by a process that died is taken over.
 */
export async function acquireBootstrapLock(host: Host): Promise<() => Promise<void>> {
  const file = host.file(LOCK_PATH);
  await host.ensureDir('/var/lib/pke-agent', 0o700);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        await rm(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
        throw new PkeError(`another bootstrap is running (pid ${holder}, lock ${file}); wait for it or stop it`, { context: { path: file } });
      }
      await rm(file, { force: true });
    }
  }
  throw new PkeError(`could not take the bootstrap lock ${file}`, { context: { path: file } });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
