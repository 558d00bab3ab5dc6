import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_PATH } from '../../agent/core/state-paths.ts';
import { acquireBootstrapLock } from '../../agent/journal/lock.ts';
import { PkeError } from '../../agent/core/errors.ts';
import { scratchHost, type ScratchHost } from '../helpers/cli.ts';

let scratch: ScratchHost;
beforeEach(() => {
  scratch = scratchHost('lock');
});
afterEach(() => scratch.remove());

const lockFile = () => path.join(scratch.dir, LOCK_PATH);

describe('the bootstrap lock', () => {
  it('is held by one run at a time, names the holder to the next, and is gone once released', async () => {
    const release = await acquireBootstrapLock(scratch.host);
    expect(readFileSync(lockFile(), 'utf8')).toBe(`${process.pid}\n`);
    const second = await acquireBootstrapLock(scratch.host).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(PkeError);
    expect((second as PkeError).message).toContain(`another bootstrap is running (pid ${process.pid}`);
    await release();
    expect(existsSync(lockFile())).toBe(false);
    const again = await acquireBootstrapLock(scratch.host);
    await again();
  });

  it('takes over a lock left by a process that is gone', async () => {
    await scratch.host.ensureDir('/var/lib/pke-agent', 0o700);
    // Above any pid Linux hands out (pid_max is at most 2^22): no process has it.
    writeFileSync(lockFile(), '4194305\n');
    const release = await acquireBootstrapLock(scratch.host);
    expect(readFileSync(lockFile(), 'utf8')).toBe(`${process.pid}\n`);
    await release();
  });
});
