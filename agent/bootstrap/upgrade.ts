import { loadConfig } from '../config/load.ts';
import type { AgentConfig } from '../config/schema.ts';
import { InputError, PkeError, errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { upgradeJournalPath } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { Journal } from '../journal/journal.ts';
import { acquireBootstrapLock } from '../journal/lock.ts';
import { factsOnce } from '../node/facts.ts';
import { upgradePhases } from '../phases/upgrade/index.ts';
import type { NodeClient } from '../protocol/client.ts';
import type { UpgradeApi } from '../protocol/upgrade-client.ts';
import { NO_LEASE } from './lease-keeper.ts';
import { OutboxReporter } from './outbox.ts';
import { runPhases, type RunSummary } from './runner.ts';

export interface UpgradeOptions {
  host: Host;
  log: Logger;
  /** The version the operator expects; the run refuses another. Default: the cluster's upgrade in progress. */
  to?: string;
  only?: string;
  redo?: boolean;
  connect: (config: AgentConfig, signal: AbortSignal) => { node: NodeClient; upgrade: UpgradeApi };
  reportFlushMs?: number;
}

/**
 * `pke-agent upgrade`: this node's part in the cluster's upgrade. Run on every node at once (by
 * the operator, a configuration tool or a timer): each checks itself, waits for its turn, and is
 * upgraded. The phases have a journal of their own per target version, so a rerun after a
 * crash resumes where it stopped and a later upgrade starts afresh; under the bootstrap's lock,
 * reported to the controller like the bootstrap's.
 */
export async function upgradeNode(options: UpgradeOptions): Promise<RunSummary> {
  const { host, log } = options;
  const { config } = await loadConfig({ host });
  const unlock = await acquireBootstrapLock(host);
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => stop.abort(new PkeError(`upgrade interrupted by ${signal}`));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const shutdown = new AbortController();
  const clients = options.connect(config, AbortSignal.any([stop.signal, shutdown.signal]));
  let reporter: OutboxReporter | undefined;
  try {
    const { upgrade } = await clients.node.status();
    if (!upgrade)
      throw new PkeError(`cluster ${config.cluster.name} has no upgrade; the operator starts one with \`controller cluster upgrade\``);
    if (options.to !== undefined && options.to.replace(/^v/, '') !== upgrade.to)
      throw new InputError(`--to ${options.to}: the cluster is being upgraded to ${upgrade.to}`);
    log.info('upgrade.target', { from: upgrade.from, to: upgrade.to });
    const journal = await Journal.open(host, undefined, upgradeJournalPath(upgrade.to));
    reporter = await OutboxReporter.open(host, clients.node, log);
    const summary = await runPhases({
      phases: upgradePhases({ to: upgrade.to, api: clients.upgrade }),
      journal,
      reporter,
      log,
      only: options.only,
      redo: options.redo,
      context: { config, host, controller: clients.node, log, signal: stop.signal, lease: NO_LEASE, facts: factsOnce(host) },
    });
    log.info('upgrade.done', { to: upgrade.to, ran: summary.ran.join(',') || 'none' });
    return summary;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (reporter) {
      const delivered = await reporter.flush(stop.signal.aborted ? 0 : (options.reportFlushMs ?? 15_000));
      if (!delivered) log.warn('report.undelivered', { events: reporter.unsent, note: 'kept on disk; the next run sends them' });
    }
    shutdown.abort();
    await clients.node.close().catch(() => undefined);
    await unlock().catch((error: unknown) => log.warn('lock.release-failed', { error: errorMessage(error) }));
  }
}
