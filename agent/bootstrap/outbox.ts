import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { OUTBOX_PATH } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { phaseEventSchema, type PhaseEvent } from '../protocol/api.ts';
import type { NodeApi } from '../protocol/node-api.ts';
import type { PhaseReporter } from './runner.ts';

const BATCH = 100;
const RETRY_DELAY_MS = { first: 500, max: 10_000 };
/**
 * A report waits this long for the ones that follow it, and they go in one request: a phase
 * that takes less reports its start and its end together, often with the next phase's start.
 * A bootstrap makes two dozen reports; every request costs the agent and the controller CPU.
 */
const SEND_AFTER_MS = 100;
/**
 * A report still undelivered this long after it was made is written to disk. Most reach the
 * controller sooner and are never written: an atomic write costs the agent more CPU than the
 * report itself.
 */
const PERSIST_AFTER_MS = 1000;

/**
 * Phase reports for the controller. A report the controller does not take at once is kept on
 * disk until it does, so reports made while the controller is unreachable (or before a crash)
 * are sent by a later run.
 */
export class OutboxReporter implements PhaseReporter {
  private pending: PhaseEvent[];
  private sending: Promise<void> | undefined;
  private sendTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> = Promise.resolve();
  private persistTimer: NodeJS.Timeout | undefined;
  /** The outbox file holds reports (some may have been delivered since). */
  private onDisk: boolean;
  private closed = false;
  private readonly host: Host;
  private readonly api: Pick<NodeApi, 'events'>;
  private readonly log: Logger;

  private constructor(host: Host, api: Pick<NodeApi, 'events'>, log: Logger, pending: PhaseEvent[], onDisk: boolean) {
    this.host = host;
    this.api = api;
    this.log = log;
    this.pending = pending;
    this.onDisk = onDisk;
  }

  static async open(host: Host, api: Pick<NodeApi, 'events'>, log: Logger): Promise<OutboxReporter> {
    const text = await host.readText(OUTBOX_PATH);
    let pending: PhaseEvent[] = [];
    if (text !== undefined) {
      const parsed = z.array(phaseEventSchema).safeParse(safeJson(text));
      if (parsed.success) pending = parsed.data;
      else log.warn('outbox.unreadable', { path: host.file(OUTBOX_PATH), note: 'starting with an empty outbox' });
    }
    const reporter = new OutboxReporter(host, api, log, pending, text !== undefined);
    if (pending.length > 0) reporter.sendSoon();
    return reporter;
  }

  get unsent(): number {
    return this.pending.length;
  }

  report(event: PhaseEvent): void {
    this.pending.push(event);
    this.sendSoon();
    this.persistTimer ??= setTimeout(() => {
      this.persistTimer = undefined;
      if (this.pending.length > 0) this.persist();
    }, PERSIST_AFTER_MS).unref();
  }

  /**
   * Waits until every report is delivered or `timeoutMs` passes; what is left stays on disk.
   * The wait holds the process open: otherwise, with the controller unreachable and nothing
   * else pending, Node would exit in the middle of it, before the run's exit code is set.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.length > 0 && Date.now() < deadline) {
      this.sendNow();
      const waited = new AbortController();
      await Promise.race([
        this.sending,
        sleep(Math.max(0, deadline - Date.now()), undefined, { signal: waited.signal }).catch(() => undefined),
      ]);
      waited.abort();
    }
    this.closed = true;
    clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    if (this.pending.length > 0 || this.onDisk) this.persist();
    await this.persisting;
    return this.pending.length === 0;
  }

  private sendSoon(): void {
    if (this.sending || this.closed) return;
    this.sendTimer ??= setTimeout(() => this.sendNow(), SEND_AFTER_MS).unref();
  }

  private sendNow(): void {
    clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
    if (this.sending || this.closed) return;
    this.sending = this.drain().finally(() => {
      this.sending = undefined;
    });
  }

  private async drain(): Promise<void> {
    let delay = RETRY_DELAY_MS.first;
    while (this.pending.length > 0 && !this.closed) {
      const batch = this.pending.slice(0, BATCH);
      try {
        await this.api.events({ events: batch });
        this.pending = this.pending.slice(batch.length);
        if (this.onDisk) this.persist();
        delay = RETRY_DELAY_MS.first;
      } catch (error) {
        this.log.warn('report.deferred', { events: this.pending.length, error: errorMessage(error), retryMs: delay });
        await sleep(delay, undefined, { ref: false });
        delay = Math.min(delay * 2, RETRY_DELAY_MS.max);
      }
    }
  }

  /** Brings the file in line with what is undelivered: written, or removed once all is delivered. */
  private persist(): void {
    const snapshot = [...this.pending];
    this.onDisk = snapshot.length > 0;
    this.persisting = this.persisting
      .then(() =>
        snapshot.length === 0
          ? this.host.remove(OUTBOX_PATH)
          : this.host.writeFile(OUTBOX_PATH, `${JSON.stringify(snapshot)}\n`, { mode: 0o600 }),
      )
      .catch((error: unknown) => this.log.warn('outbox.write-failed', { error: errorMessage(error) }));
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
