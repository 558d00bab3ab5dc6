import type { PhaseEvent } from '../../protocol/api.ts';
import type { PhaseRun } from '../store/state.ts';

/**
 * A node's phase runs, from its start, end and failure reports. The outbox delivers at least
 * once, so a report seen before changes nothing; a start while another run is still open
 * closes that one as failed (its agent stopped without reporting, and a rerun began).
 */

/** The runs kept per node: a formation is some 12 phases, a few retries each. */
const MAX_PHASE_RUNS = 100;

export const NO_END_REPORTED = 'no end reported: the agent stopped and a new run began';

/** Applies one report (times are epoch ms); returns the run it ended, if it ended one. */
export function recordPhaseEvent(runs: PhaseRun[], event: PhaseEvent, at: number): PhaseRun | undefined {
  if (event.type === 'start') {
    if (runs.some((run) => run.phase === event.phase && run.attempt === event.attempt && run.startedAt === at)) return undefined;
    for (const run of runs) {
      if (run.outcome === 'running')
        Object.assign(run, { outcome: 'failed', endedAt: Math.max(run.startedAt, at), message: NO_END_REPORTED });
    }
    runs.push({ phase: event.phase, attempt: event.attempt, startedAt: at, outcome: 'running' });
    if (runs.length > MAX_PHASE_RUNS) runs.splice(0, runs.length - MAX_PHASE_RUNS);
    return undefined;
  }
  const outcome = event.type === 'end' ? 'done' : 'failed';
  const open = runs.findLast((run) => run.phase === event.phase && run.attempt === event.attempt && run.outcome === 'running');
  if (!open) {
    if (runs.some((run) => run.phase === event.phase && run.attempt === event.attempt && run.endedAt === at)) return undefined;
    // An end without its start (a report lost before the outbox kept it): a run of no length.
    const run: PhaseRun = { phase: event.phase, attempt: event.attempt, startedAt: at, endedAt: at, outcome };
    if (event.type === 'fail') run.message = failureMessage(event);
    runs.push(run);
    return run;
  }
  open.outcome = outcome;
  open.endedAt = Math.max(open.startedAt, at);
  if (event.type === 'fail') open.message = failureMessage(event);
  return open;
}

/** A failure report in one line: its message, the command and its exit code. */
export function failureMessage(event: PhaseEvent): string {
  const detail = [event.command && `command: ${event.command}`, event.exitCode !== undefined && `exit ${event.exitCode}`]
    .filter(Boolean)
    .join(', ');
  return `${event.message ?? 'failed'}${detail ? ` (${detail})` : ''}`;
}
