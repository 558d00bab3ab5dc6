import { existsSync, readFileSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runPhases, type PhaseReporter } from '../../agent/bootstrap/runner.ts';
import { CommandError } from '../../agent/core/errors.ts';
import { silentLogger } from '../../agent/core/log.ts';
import { Host } from '../../agent/host/host.ts';
import { Journal } from '../../agent/journal/journal.ts';
import type { Phase } from '../../agent/phases/phase.ts';
import type { PhaseEvent } from '../../agent/protocol/api.ts';
import { runContext } from '../helpers/run-context.ts';
import { REPO, scratchDir } from '../helpers/cli.ts';

let scratch: { dir: string; remove: () => void };
beforeEach(() => {
  scratch = scratchDir('journal');
});
afterEach(() => scratch.remove());

const journalFile = () => path.join(scratch.dir, 'var/lib/pke-agent/journal.json');
const count = (name: string) => Number(readFileSync(path.join(scratch.dir, 'counts', name), 'utf8'));

describe('resume after the process is killed in the middle of a phase', () => {
  it('skips the finished phases and runs the interrupted one again from its start', async () => {
    const fixture = path.join(REPO, 'test/fixtures/run-test-phases.ts');
    const first = execa(process.execPath, [fixture, scratch.dir], { env: { BLOCK_IN: 'two' }, reject: false });
    const blocked = path.join(scratch.dir, 'blocked');
    for (let i = 0; i < 200 && !existsSync(blocked); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(blocked)).toBe(true);
    first.kill('SIGKILL');
    await first;

    const halfway = JSON.parse(readFileSync(journalFile(), 'utf8'));
    expect(halfway.phases.one.state).toBe('done');
    expect(halfway.phases.two).toMatchObject({ state: 'running', attempts: 1 });
    expect(halfway.phases.three).toBeUndefined();
    expect(statSync(journalFile()).mode & 0o777).toBe(0o600);

    const second = await execa(process.execPath, [fixture, scratch.dir]);
    const journal = JSON.parse(second.stdout);
    expect(journal.phases.one).toMatchObject({ state: 'done', attempts: 1 });
    expect(journal.phases.two).toMatchObject({ state: 'done', attempts: 2 });
    expect(journal.phases.three).toMatchObject({ state: 'done', attempts: 1 });
    expect(count('one')).toBe(1);
    expect(count('two')).toBe(2);
    expect(count('three')).toBe(1);

    // A third run has nothing left to do.
    await execa(process.execPath, [fixture, scratch.dir]);
    expect([count('one'), count('two'), count('three')]).toEqual([1, 2, 1]);
  });
});

describe('the runner', () => {
  function recorder(): PhaseReporter & { events: PhaseEvent[] } {
    const events: PhaseEvent[] = [];
    return { events, report: (event) => events.push(event) };
  }

  it('records a failed command with its exit code and stderr tail, reports it, and stops', async () => {
    const host = new Host({ root: scratch.dir });
    const failing: Phase = {
      name: 'failing',
      summary: 'runs a command that fails',
      needs: [],
      run: async (ctx) => {
        await ctx.host.run('sh', ['-c', 'echo "first line" >&2; echo "disk full on /var" >&2; exit 3']);
      },
    };
    const never: Phase = { name: 'after', summary: 'must not run', needs: ['failing'], run: async () => expect.unreachable() };
    const reporter = recorder();
    const journal = await Journal.open(host);
    const error = await runPhases({ phases: [failing, never], journal, context: runContext(host), reporter, log: silentLogger }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).context).toMatchObject({ phase: 'failing', exitCode: 3 });

    const record = (await Journal.read(host))!.phases.failing!;
    expect(record.state).toBe('failed');
    expect(record.lastError).toMatchObject({ command: 'sh -c echo "first line" >&2; echo "disk full on /var" >&2; exit 3', exitCode: 3 });
    expect(record.lastError?.stderrTail).toBe('first line\ndisk full on /var');
    expect(record.lastError?.message).toMatch(/exited 3: disk full on \/var/);
    expect(reporter.events.map((e) => `${e.phase}:${e.type}`)).toEqual(['failing:start', 'failing:fail']);
    expect(reporter.events[1]).toMatchObject({ exitCode: 3, stderrTail: 'first line\ndisk full on /var' });
  });

  it('retries what the phase marks retryable, with each attempt journaled', async () => {
    const host = new Host({ root: scratch.dir });
    let calls = 0;
    const flaky: Phase = {
      name: 'flaky',
      summary: 'fails twice with a transient error',
      needs: [],
      retry: { attempts: 4, initialDelayMs: 10, maxDelayMs: 20, retryable: (e) => String(e).includes('transient') },
      run: async () => {
        calls++;
        if (calls < 3) throw new Error('transient: connection refused');
        return { calls };
      },
    };
    const reporter = recorder();
    await runPhases({ phases: [flaky], journal: await Journal.open(host), context: runContext(host), reporter, log: silentLogger });
    const record = (await Journal.read(host))!.phases.flaky!;
    expect(record).toMatchObject({ state: 'done', attempts: 3, output: { calls: 3 } });
    expect(reporter.events.map((e) => `${e.type}#${e.attempt}`)).toEqual(['start#1', 'fail#1', 'start#2', 'fail#2', 'start#3', 'end#3']);
  });

  it('does not retry an error the phase does not mark retryable', async () => {
    const host = new Host({ root: scratch.dir });
    let calls = 0;
    const phase: Phase = {
      name: 'fatal',
      summary: 'fails for good',
      needs: [],
      retry: { attempts: 5, initialDelayMs: 10, maxDelayMs: 20, retryable: () => false },
      run: async () => {
        calls++;
        throw new Error('bad certificate');
      },
    };
    await expect(
      runPhases({ phases: [phase], journal: await Journal.open(host), context: runContext(host), reporter: recorder(), log: silentLogger }),
    ).rejects.toThrow('bad certificate');
    expect(calls).toBe(1);
  });

  it('skips phases that do not apply, marks found-done ones done, and hands outputs on', async () => {
    const host = new Host({ root: scratch.dir });
    const seen: unknown[] = [];
    const phases: Phase[] = [
      { name: 'produce', summary: '', needs: [], run: async () => ({ value: 42 }) },
      {
        name: 'masters-only',
        summary: '',
        needs: [],
        appliesTo: (ctx) => ctx.config.role === 'worker',
        run: async () => expect.unreachable(),
      },
      { name: 'already', summary: '', needs: [], isDone: async () => true, run: async () => expect.unreachable() },
      {
        name: 'consume',
        summary: '',
        needs: ['produce', 'masters-only', 'already'],
        run: async (ctx) => void seen.push(ctx.outputs.produce),
      },
    ];
    const summary = await runPhases({
      phases,
      journal: await Journal.open(host),
      context: runContext(host),
      reporter: recorder(),
      log: silentLogger,
    });
    expect(summary.skipped).toEqual(['masters-only']);
    expect(seen).toEqual([{ value: 42 }]);
    const journal = (await Journal.read(host))!;
    expect(journal.phases['masters-only']).toMatchObject({ state: 'skipped', note: 'not for a master node' });
    expect(journal.phases.already).toMatchObject({ state: 'done', note: 'found done on the host' });
  });

  it('runs one phase alone with --phase, and refuses when what it needs is not done', async () => {
    const host = new Host({ root: scratch.dir });
    const phases: Phase[] = [
      { name: 'a', summary: '', needs: [], run: async () => undefined },
      { name: 'b', summary: '', needs: ['a'], run: async () => undefined },
    ];
    const run = (only: string) =>
      Journal.open(host).then((journal) =>
        runPhases({ phases, journal, context: runContext(host), reporter: recorder(), log: silentLogger, only }),
      );
    await expect(run('b')).rejects.toThrow('phase b needs a first');
    await expect(run('c')).rejects.toThrow('--phase c: no such phase; the phases are a, b');
    expect((await run('a')).ran).toEqual(['a']);
    expect((await run('b')).ran).toEqual(['b']);
    expect((await run('b')).alreadyDone).toEqual(['b']);

    const redo = await Journal.open(host).then((journal) =>
      runPhases({ phases, journal, context: runContext(host), reporter: recorder(), log: silentLogger, only: 'b', redo: true }),
    );
    expect(redo.ran).toEqual(['b']);
    expect((await Journal.read(host))!.phases.b?.attempts).toBe(2);
  });

  it('lets a phase done in an earlier run say its result no longer holds, --phase or not; it then runs again', async () => {
    const host = new Host({ root: scratch.dir });
    let holds = true;
    const runs: string[] = [];
    const phases: Phase[] = [
      { name: 'lease', summary: '', needs: [], resume: async () => holds, run: async () => void runs.push('lease') },
      { name: 'later', summary: '', needs: ['lease'], run: async () => void runs.push('later') },
    ];
    const run = (only?: string) =>
      Journal.open(host).then((journal) =>
        runPhases({ phases, journal, context: runContext(host), reporter: recorder(), log: silentLogger, only }),
      );
    await run();
    await run();
    expect(runs).toEqual(['lease', 'later']);
    holds = false;
    expect((await run('later')).alreadyDone).toEqual(['later']);
    expect((await Journal.read(host))!.phases.lease).toBeUndefined();
    await run();
    expect(runs).toEqual(['lease', 'later', 'lease']);
  });

  it('refuses a corrupt journal instead of starting over', async () => {
    mkdirSync(path.dirname(journalFile()), { recursive: true });
    writeFileSync(journalFile(), '{"version": 1, "phases": ');
    await expect(Journal.open(new Host({ root: scratch.dir }))).rejects.toThrow(/journal .*journal\.json is corrupt .*move it aside/);
  });
});
