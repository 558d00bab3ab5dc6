import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import { resetUnfinishedInit } from '../kube/init-marker.ts';

/**
 * Undoes what a leader began before its kubeadm init finished, once another node may lead: the
 * init itself (its files would trip up the join this node does instead; the shared CAs are
 * kept), and keepalived, which runs the leader's config from before init and would hold the VIP
 * at priority 255 against the node that leads now.
 */
export async function stepDownBeforeInit(host: Host, log: Logger): Promise<void> {
  await resetUnfinishedInit(host, log, 'this node stepped down as leader before its init finished');
  const { keepalived } = await host.service.states(['keepalived']);
  if (keepalived.active) {
    await host.service.stop('keepalived');
    log.warn('vip.released', { note: 'keepalived ran the leader config from before init; the VIP is left to the node that leads now' });
  }
}
