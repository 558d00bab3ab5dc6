import { loadConfig, redactGuestinfo, saveConfig, describeSource, type LoadOptions } from '../config/load.ts';
import type { AgentConfig } from '../config/schema.ts';
import { PkeError, errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import { Journal } from '../journal/journal.ts';
import { factsOnce } from '../node/facts.ts';
import { PHASES } from '../phases/index.ts';
import type { LeaderClaimResponse } from '../protocol/api.ts';
import { ControllerRequestError } from '../protocol/errors.ts';
import type { NodeApi } from '../protocol/node-api.ts';
import { LeaseKeeper } from './lease-keeper.ts';
import { acquireBootstrapLock } from '../journal/lock.ts';
import { OutboxReporter } from './outbox.ts';
import { runPhases, type RunSummary } from './runner.ts';
import { stepDownBeforeInit } from './step-down.ts';

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
    await resumeLeadership(host, journal, api, lease, log);

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
    if (leaseLost) await stepDownBeforeInit(host, log).catch((stepDownError: unknown) => log.error('step-down.failed', { error: errorMessage(stepDownError) }));
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

/**
 * A rerun of a node that won the election: keep renewing its lease; or, when the lease ended
 * while the node was down and init had not finished, step down (undo the init it began, stop
 * its keepalived) and take part in the election again (someone else may lead now; this node
 * then joins).
 */
async function resumeLeadership(host: Host, journal: Journal, api: NodeApi, lease: LeaseKeeper, log: Logger): Promise<void> {
  const won = journal.outputs().elect;
  if (!won?.leader || won.epoch === undefined || journal.record('signal-joined').state === 'done') return;
  let renewal: LeaderClaimResponse | undefined;
  try {
    renewal = await api.claimLeader({ epoch: won.epoch });
  } catch (error) {
    if (!(error instanceof ControllerRequestError && error.code === 'fenced')) throw error;
  }
  if (renewal?.granted) {
    lease.hold(won.epoch, renewal.leaseTtlSeconds, renewal.init);
    return;
  }
  if (journal.record('kube-init').state === 'done') {
    throw new PkeError(`this node initialized the cluster as leader (epoch ${won.epoch}), but its lease has ended and the controller refuses to renew it; see \`pke-agent controller status\``);
  }
  log.warn('elect.fenced', { epoch: won.epoch, note: 'the lease ended while this node was down; electing again' });
  await stepDownBeforeInit(host, log);
  await journal.reset('elect');
}
