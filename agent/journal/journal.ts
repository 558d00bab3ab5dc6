import { z } from 'zod';
import { PkeError, type ErrorContext } from '../core/errors.ts';
import { formatIssues } from '../core/schema-issues.ts';
import { JOURNAL_PATH } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import type { PhaseOutputs } from './phase-outputs.ts';

/**
 * The on-disk record of a bootstrap: one entry per phase, rewritten atomically (fsync, rename)
 * at every change, so that a rerun after a crash or reboot knows exactly where it stopped.
 */

const PHASE_STATES = ['pending', 'running', 'done', 'failed', 'skipped'] as const;

const phaseErrorSchema = z.object({
  message: z.string(),
  at: z.string(),
  command: z.string().optional(),
  exitCode: z.number().optional(),
  stderrTail: z.string().optional(),
});

const phaseRecordSchema = z.object({
  state: z.enum(PHASE_STATES),
  attempts: z.number().int().nonnegative(),
  startedAt: z.string().optional(),
  endedAt: z.string().optional(),
  /** Why a phase was skipped, or how it was found done. */
  note: z.string().optional(),
  lastError: phaseErrorSchema.optional(),
  /** What the phase hands to later phases; never secrets. */
  output: z.unknown().optional(),
});
export type PhaseRecord = z.infer<typeof phaseRecordSchema>;

const journalSchema = z.object({
  version: z.literal(1),
  createdAt: z.string(),
  updatedAt: z.string(),
  phases: z.record(z.string(), phaseRecordSchema),
});
export type JournalData = z.infer<typeof journalSchema>;

export class Journal {
  private data: JournalData;
  private readonly host: Host;
  private readonly now: () => Date;
  /** The bootstrap's journal, or another run's (an upgrade keeps its own). */
  private readonly path: string;

  private constructor(host: Host, data: JournalData, now: () => Date, path: string) {
    this.host = host;
    this.data = data;
    this.now = now;
    this.path = path;
  }

  /** Reads the journal; undefined when this node was never bootstrapped. A corrupt file is an error, never a silent reset. */
  static async read(host: Host, path: string = JOURNAL_PATH): Promise<JournalData | undefined> {
    const text = await host.readText(path);
    if (text === undefined) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw corrupt(host, path, (error as Error).message);
    }
    const result = journalSchema.safeParse(parsed);
    if (!result.success) throw corrupt(host, path, formatIssues(result.error.issues, parsed));
    return result.data;
  }

  /** Opens the journal for a run, creating it (in memory; on disk at the first change) when absent. */
  static async open(host: Host, now: () => Date = () => new Date(), path: string = JOURNAL_PATH): Promise<Journal> {
    const existing = await Journal.read(host, path);
    const stamp = now().toISOString();
    return new Journal(host, existing ?? { version: 1, createdAt: stamp, updatedAt: stamp, phases: {} }, now, path);
  }

  get snapshot(): Readonly<JournalData> {
    return this.data;
  }

  record(phase: string): PhaseRecord {
    return this.data.phases[phase] ?? { state: 'pending', attempts: 0 };
  }

  outputs(): PhaseOutputs {
    return phaseOutputs(this.data);
  }

  async start(phase: string): Promise<PhaseRecord> {
    const previous = this.record(phase);
    return this.write(phase, {
      state: 'running',
      attempts: previous.attempts + 1,
      startedAt: this.stamp(),
      lastError: previous.lastError,
    });
  }

  async finish(phase: string, output: unknown, note?: string): Promise<PhaseRecord> {
    const previous = this.record(phase);
    return this.write(phase, {
      state: 'done',
      attempts: previous.attempts,
      startedAt: previous.startedAt ?? this.stamp(),
      endedAt: this.stamp(),
      note,
      output: output === undefined ? undefined : output,
    });
  }

  async fail(phase: string, message: string, context: ErrorContext): Promise<PhaseRecord> {
    const previous = this.record(phase);
    const endedAt = this.stamp();
    return this.write(phase, {
      state: 'failed',
      attempts: previous.attempts,
      startedAt: previous.startedAt,
      endedAt,
      lastError: { message, at: endedAt, command: context.command, exitCode: context.exitCode, stderrTail: context.stderrTail },
    });
  }

  async skip(phase: string, note: string): Promise<PhaseRecord> {
    const stamp = this.stamp();
    return this.write(phase, { state: 'skipped', attempts: this.record(phase).attempts, startedAt: stamp, endedAt: stamp, note });
  }

  /** Forgets a phase's record, so that the next run does it again (for example, an election whose lease was lost). */
  async reset(phase: string): Promise<void> {
    const { [phase]: _forgotten, ...rest } = this.data.phases;
    const next: JournalData = { ...this.data, updatedAt: this.stamp(), phases: rest };
    await this.host.writeFile(this.path, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    this.data = next;
  }

  private async write(phase: string, record: PhaseRecord): Promise<PhaseRecord> {
    const next: JournalData = { ...this.data, updatedAt: this.stamp(), phases: { ...this.data.phases, [phase]: record } };
    await this.host.writeFile(this.path, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    this.data = next;
    return record;
  }

  private stamp(): string {
    return this.now().toISOString();
  }
}

/**
 * The outputs of the phases that are done, by phase name. The journal holds whatever each phase
 * returned, and only the runner writes it, from the phase of that name: so each key has the
 * type PhaseOutputs gives it.
 */
export function phaseOutputs(data: JournalData): PhaseOutputs {
  const outputs: PhaseOutputs = {};
  for (const [name, record] of Object.entries(data.phases)) {
    if (record.state === 'done' && record.output !== undefined) outputs[name] = record.output;
  }
  return outputs;
}

function corrupt(host: Host, path: string, reason: string): PkeError {
  return new PkeError(`journal ${host.file(path)} is corrupt (${reason}); move it aside to start its run over`, {
    context: { path: host.file(path) },
  });
}
