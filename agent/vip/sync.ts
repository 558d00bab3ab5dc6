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
import { VIP_RELEASE_PHASE } from '../protocol/api.ts';
import { applyKeepalived, type KeepalivedState } from './apply-keepalived.ts';

export type VipSyncResult = { synced: KeepalivedState } | { skipped: string } | { released: true };

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
    const node = registeredNode(outputs, 'vip sync');
    const view = await controller.controlPlane();
    if (view.nodes.some((n) => n.name === node.nodeName && n.leaving === true)) {
      await releaseVip(host, log, controller);
      return { released: true };
    }
    const synced = await applyKeepalived(host, log, {
      endpoint: config.controlPlaneEndpoint,
      node,
      isLeader: outputs.elect?.leader === true,
      view,
      beforeInit: false,
    });
    return { synced };
  } finally {
    await controller.close?.();
    await unlock();
  }
}

/**
 * This node is being removed (`controller node remove`): keepalived stops, and its priority-0
 * advert makes a peer take the VIP at once, before the controller removes the node's etcd
 * member (which takes its API server down); disabled, so a reboot does not bring it back. Then
 * the controller hears it.
 */
async function releaseVip(host: Host, log: Logger, controller: NodeApi): Promise<void> {
  await host.service.disableNow('keepalived');
  log.info('vip.released', { reason: 'this node is leaving the cluster' });
  const at = new Date().toISOString();
  await controller.events({
    events: [{ phase: VIP_RELEASE_PHASE, type: 'end', at, attempt: 1, message: 'keepalived stopped: leaving the cluster' }],
  });
}
