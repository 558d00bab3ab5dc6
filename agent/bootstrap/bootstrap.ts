import { loadConfig, redactGuestinfo, saveConfig, describeSource, type LoadOptions } from '../config/load.ts';
import type { AgentConfig } from '../config/schema.ts';
import { PkeError, errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import { Journal } from '../journal/journal.ts';
import { acquireBootstrapLock } from '../journal/lock.ts';
import { factsOnce } from '../node/facts.ts';
import { PHASES } from '../phases/index.ts';
import { stepDownBeforeInit } from '../phases/step-down.ts';
import type { NodeApi } from '../protocol/node-api.ts';
import { LeaseKeeper } from './lease-keeper.ts';
import { OutboxReporter } from './outbox.ts';
import { runPhases, type RunSummary } from './runner.ts';

export interface BootstrapOptions extends LoadOptions {
  host: Host;
  log: Logger;
  /** Run this phase alone (`--phase`). */
  only?: string;
  /** With `only`: run it again even if it is done (`--redo`). */
  redo?: boolean;
  /** Leave guestinfo as it is (debugging): by default the config is redacted once it is saved. */
  keepGuestinfo?: boolean;
  /** Builds the controller client for this node's config; `signal` ends its requests and retries. */
  connect: (config: AgentConfig, signal: AbortSignal) => NodeApi & { close?: () => Promise<void> };
  /** How long to keep trying to deliver the last phase reports before exiting. */
  reportFlushMs?: number;
}

/**
 * `pke-agent bootstrap`: read and check the config (nothing is written if it is bad), keep it,
 * redact guestinfo, then walk the phases under a lock, reporting each to the controller.
 */
export async function bootstrap(options: BootstrapOptions): Promise<RunSummary> {
  const { host, log } = options;
  const loaded = await loadConfig(options);
  const { config } = loaded;
  log.info('config.loaded', { source: describeSource(loaded.source), cluster: config.cluster.name, role: config.role, pool: config.pool });

  const unlock = await acquireBootstrapLock(host);
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => stop.abort(new PkeError(`bootstrap interrupted by ${signal}`));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  let reporter: OutboxReporter | undefined;
  // Ends the client's requests in flight once the run is over and the reports had their chance.
  const shutdown = new AbortController();
  let api: ReturnType<BootstrapOptions['connect']> | undefined;
  let leaseLost = false;
  try {
    await saveConfig(host, config);
    if (!options.keepGuestinfo && (await redactGuestinfo(loaded.source))) log.info('guestinfo.redacted', { name: 'guestinfo.pke.config' });

    api = options.connect(config, AbortSignal.any([stop.signal, shutdown.signal]));
    const journal = await Journal.open(host);
    reporter = await OutboxReporter.open(host, api, log);
    const lease = new LeaseKeeper(api, log, (reason) => {
      leaseLost = true;
      stop.abort(new PkeError(`lost the leader lease: ${reason}`));
    });

    const summary = await runPhases({
      phases: PHASES,
      journal,
      reporter,
      log,
      only: options.only,
      redo: options.redo,
      context: { config, host, controller: api, log, signal: stop.signal, lease, facts: factsOnce(host) },
    });
    lease.release();
    log.info('bootstrap.done', { ran: summary.ran.join(',') || 'none', skipped: summary.skipped.join(',') || 'none' });
    return summary;
  } catch (error) {
    // Another node may lead now: do not leave it an init of ours or a keepalived at priority 255.
    if (leaseLost)
      await stepDownBeforeInit(host, log).catch((stepDownError: unknown) =>
        log.error('step-down.failed', { error: errorMessage(stepDownError) }),
      );
    throw error;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (reporter) {
      // A stopped run's client is stopped too: its reports wait on disk for the next run.
      const delivered = await reporter.flush(stop.signal.aborted ? 0 : (options.reportFlushMs ?? 15_000));
      if (!delivered) log.warn('report.undelivered', { events: reporter.unsent, note: 'kept on disk; the next run sends them' });
    }
    shutdown.abort();
    await api?.close?.().catch(() => undefined);
    await unlock().catch((error: unknown) => log.warn('lock.release-failed', { error: errorMessage(error) }));
  }
}
