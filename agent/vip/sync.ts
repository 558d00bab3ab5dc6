import { parseConfig } from '../config/load.ts';
import type { AgentConfig } from '../config/schema.ts';
import { PkeError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { SAVED_CONFIG_PATH } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { Journal, phaseOutputs } from '../journal/journal.ts';
import { acquireBootstrapLock } from '../journal/lock.ts';
import { registeredNode } from '../journal/phase-outputs.ts';
import type { NodeApi } from '../protocol/node-api.ts';
import { applyKeepalived, type KeepalivedState } from './apply-keepalived.ts';

export type VipSyncResult = { synced: KeepalivedState } | { skipped: string };

/**
 * `pke-agent vip sync`: brings keepalived's peer list in line with the control-plane nodes the
 * controller knows now. A node's vip phase saw the peers of its own bootstrap; a control-plane
 * node that joins later is added here (the image runs this from a systemd timer). Does nothing
 * on workers, before the node's vip phase is done, or while a bootstrap runs.
 */
export async function syncVip(options: {
  host: Host;
  log: Logger;
  connect: (config: AgentConfig) => NodeApi & { close?: () => Promise<void> };
}): Promise<VipSyncResult> {
  const { host, log } = options;
  const journal = await Journal.read(host);
  if (journal?.phases.vip?.state !== 'done')
    return { skipped: `the vip phase is ${journal?.phases.vip?.state ?? 'not started'} on this node` };
  const saved = await host.readText(SAVED_CONFIG_PATH);
  if (saved === undefined) throw new PkeError(`vip sync: no saved config at ${SAVED_CONFIG_PATH}`);
  const config = parseConfig(`saved config ${SAVED_CONFIG_PATH}`, saved);

  let unlock: () => Promise<void>;
  try {
    unlock = await acquireBootstrapLock(host);
  } catch (error) {
    if (error instanceof PkeError && /another bootstrap is running/.test(error.message)) return { skipped: 'a bootstrap is running' };
    throw error;
  }
  const controller = options.connect(config);
  try {
    const outputs = phaseOutputs(journal);
    const synced = await applyKeepalived(host, log, {
      endpoint: config.controlPlaneEndpoint,
      node: registeredNode(outputs, 'vip sync'),
      isLeader: outputs.elect?.leader === true,
      view: await controller.controlPlane(),
      beforeInit: false,
    });
    return { synced };
  } finally {
    await controller.close?.();
    await unlock();
  }
}
