import pRetry from 'p-retry';
import { InputError, PkeError, errorMessage, inPhase } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Journal } from '../journal/journal.ts';
import type { Phase, PhaseContext } from '../phases/phase.ts';
import type { PhaseEvent } from '../protocol/api.ts';

/** Where phase starts, ends and failures go besides the journal (the controller, via an outbox). */
export interface PhaseReporter {
  report(event: PhaseEvent): void;
}

export interface RunPhasesOptions {
  phases: readonly Phase[];
  journal: Journal;
  /** The context without outputs: the runner fills them in from the journal before each phase. */
  context: Omit<PhaseContext, 'outputs'>;
  reporter: PhaseReporter;
  log: Logger;
  /** Run only this phase (`bootstrap --phase NAME`). */
  only?: string;
  /** With `only`: run it even if the journal has it done (`--redo`); its own isDone check still applies. */
  redo?: boolean;
  now?: () => Date;
}

export interface RunSummary {
  ran: string[];
  skipped: string[];
  alreadyDone: string[];
}

/**
 * Walks the ordered phase list: lets the phases done in an earlier run take up what they keep
 * going (or be done again), skips what does not apply or is done, journals every start,
 * end and failure, reports each to the controller, retries what a phase marks retryable, and
 * stops at the first failure. Phases never call each other.
 */
export async function runPhases(options: RunPhasesOptions): Promise<RunSummary> {
  const { phases, journal, reporter, log } = options;
  const now = options.now ?? (() => new Date());
  const summary: RunSummary = { ran: [], skipped: [], alreadyDone: [] };

  if (options.redo && options.only === undefined) throw new InputError('--redo goes with --phase NAME');
  if (options.only !== undefined && !phases.some((p) => p.name === options.only)) {
    throw new InputError(`--phase ${options.only}: no such phase; the phases are ${phases.map((p) => p.name).join(', ')}`);
  }

  for (const phase of phases) {
    if (!phase.resume || journal.record(phase.name).state !== 'done') continue;
    const ctx: PhaseContext = { ...options.context, outputs: journal.outputs() };
    if (!(await phase.resume(ctx))) await journal.reset(phase.name);
  }

  for (const phase of phases) {
    if (options.only !== undefined && phase.name !== options.only) continue;
    const ctx: PhaseContext = { ...options.context, outputs: journal.outputs() };
    const plog = log.child({ phase: phase.name });
    const record = journal.record(phase.name);

    const redo = options.redo === true && options.only === phase.name && record.state === 'done';
    if ((record.state === 'done' || record.state === 'skipped') && !redo) {
      summary.alreadyDone.push(phase.name);
      plog.info('phase.already-done', { state: record.state });
      continue;
    }
    if (phase.appliesTo && !phase.appliesTo(ctx)) {
      await journal.skip(phase.name, phase.skipNote?.(ctx) ?? `not for a ${ctx.config.role} node`);
      summary.skipped.push(phase.name);
      plog.info('phase.skipped', { reason: journal.record(phase.name).note });
      continue;
    }
    const missing = phase.needs.filter((need) => !['done', 'skipped'].includes(journal.record(need).state));
    if (missing.length > 0) {
      throw new InputError(`phase ${phase.name} needs ${missing.join(', ')} first (run bootstrap without --phase, or those phases)`, {
        phase: phase.name,
      });
    }
    if (record.state === 'running')
      plog.warn('phase.resume', { note: 'the previous run stopped inside this phase; running it again from its start' });

    if (phase.isDone && (await phase.isDone(ctx))) {
      await journal.start(phase.name);
      await journal.finish(phase.name, undefined, 'found done on the host');
      summary.ran.push(phase.name);
      plog.info('phase.found-done');
      continue;
    }

    await runOne(phase, ctx, journal, reporter, plog, now);
    summary.ran.push(phase.name);
  }
  return summary;
}

async function runOne(
  phase: Phase,
  ctx: PhaseContext,
  journal: Journal,
  reporter: PhaseReporter,
  log: Logger,
  now: () => Date,
): Promise<void> {
  const policy = phase.retry;
  const attempt = async () => {
    const record = await journal.start(phase.name);
    const started = now();
    reporter.report({ phase: phase.name, type: 'start', at: started.toISOString(), attempt: record.attempts });
    log.info('phase.start', { attempt: record.attempts });
    try {
      const output = await phase.run(ctx);
      await journal.finish(phase.name, output);
      reporter.report({ phase: phase.name, type: 'end', at: now().toISOString(), attempt: record.attempts });
      log.info('phase.done', { attempt: record.attempts, ms: now().getTime() - started.getTime() });
    } catch (raw) {
      const error = inPhase(raw, phase.name);
      const { command, exitCode, stderrTail } = error.context;
      await journal.fail(phase.name, error.message, error.context);
      reporter.report({
        phase: phase.name,
        type: 'fail',
        at: now().toISOString(),
        attempt: record.attempts,
        message: error.message.slice(0, 4096),
        command: command?.slice(0, 4096),
        exitCode,
        stderrTail: stderrTail?.slice(-8192),
      });
      log.error('phase.failed', { attempt: record.attempts, error: error.message, command, exitCode });
      throw error;
    }
  };

  if (!policy || policy.attempts <= 1) return attempt();
  await pRetry(attempt, {
    retries: policy.attempts - 1,
    minTimeout: policy.initialDelayMs,
    maxTimeout: policy.maxDelayMs,
    factor: 2,
    randomize: true,
    signal: ctx.signal,
    shouldRetry: ({ error }) => policy.retryable(error),
    onFailedAttempt: async ({ error, retriesLeft }) => {
      if (retriesLeft > 0) log.info('phase.retry', { retriesLeft });
      if (retriesLeft > 0 && policy.retryable(error)) await policy.beforeRetry?.(ctx, error);
    },
  }).catch((error: unknown) => {
    throw error instanceof PkeError ? error : new PkeError(errorMessage(error), { context: { phase: phase.name }, cause: error });
  });
}
