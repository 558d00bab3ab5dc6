import { CommandError, PkeError } from '../core/errors.ts';
import type { PhaseContext } from '../phases/phase.ts';
import { KEEPALIVED_CONFIG, configuredPriority, renderKeepalivedConfig, unicastPeers, type KeepalivedInput } from './keepalived.ts';

export interface KeepalivedState {
  /** The config file was rewritten (first run, or the control-plane nodes changed). */
  changed: boolean;
  /** keepalived was not running and was started. */
  started: boolean;
  interface: string;
  priority: number;
  peers: string[];
  virtualRouterId: number;
}

const CHECK_COPY = `${KEEPALIVED_CONFIG}.pke-check`;

/**
 * Brings keepalived in line with the controller's control-plane view: renders the config, has
 * the real `keepalived -t` check it before it replaces the live file, enables the service
 * (except before init), starts it when stopped and reloads it when the config changed. Used by
 * the vip phase and, on the leader, alongside `kubeadm init` (whose kubeconfigs point at the VIP).
 */
export async function applyKeepalived(ctx: PhaseContext, options: { beforeInit: boolean }): Promise<KeepalivedState> {
  const { config, host, log, controller } = ctx;
  const node = ctx.outputs.register;
  if (!node) throw new PkeError('the register phase has not recorded this node yet');
  const view = await controller.controlPlane();
  const isLeader = ctx.outputs.elect?.leader === true;
  const networkInterface = config.controlPlaneEndpoint.interface ?? node.interface;
  const input: KeepalivedInput = {
    nodeName: node.nodeName,
    primaryIp: node.primaryIp,
    interface: networkInterface,
    vip: config.controlPlaneEndpoint.vip,
    apiPort: config.controlPlaneEndpoint.port,
    view,
    isLeader,
    beforeInit: options.beforeInit,
  };
  const text = renderKeepalivedConfig(input);

  const changed = (await host.readText(KEEPALIVED_CONFIG)) !== text;
  if (changed) {
    await checkConfig(ctx, text);
    await host.writeFile(KEEPALIVED_CONFIG, text, { mode: 0o644 });
  }

  const { keepalived } = await host.service.states(['keepalived']);
  let started = false;
  // The config before init is only ever run, never enabled: at boot, keepalived comes back only
  // with a node's final config (the image leaves keepalived disabled).
  if (!keepalived.active) {
    if (options.beforeInit) await host.service.start('keepalived');
    else await host.service.enableNow('keepalived');
    started = true;
  } else {
    if (!options.beforeInit && !keepalived.enabled) await host.service.enable('keepalived');
    if (changed) await host.service.reloadOrRestart('keepalived');
  }

  const state: KeepalivedState = {
    changed,
    started,
    interface: networkInterface,
    priority: configuredPriority(input),
    peers: unicastPeers(view, node.nodeName, node.primaryIp),
    virtualRouterId: view.virtualRouterId,
  };
  log.info('vip.keepalived', { ...state, peers: state.peers.join(',') });
  return state;
}

/** `keepalived -t` on a copy next to the live file, so a rejected config never replaces a working one. */
async function checkConfig({ host, log }: PhaseContext, text: string): Promise<void> {
  if (!(await host.which('keepalived'))) {
    log.warn('vip.keepalived-check-skipped', { reason: 'keepalived is not on PATH' });
    return;
  }
  await host.writeFile(CHECK_COPY, text, { mode: 0o600 });
  try {
    // keepalived -t exits 0 for a missing file: the path must be absolute and real.
    const result = await host.run('keepalived', ['-t', '-f', host.file(CHECK_COPY)], { timeoutMs: 30_000, displayArgs: ['-t', '-f', KEEPALIVED_CONFIG] });
    for (const line of result.stderr.split('\n').filter((l) => l.trim())) log.warn('vip.keepalived-check', { line });
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    throw new PkeError(`keepalived rejected the rendered ${KEEPALIVED_CONFIG}: ${error.message}`, { context: error.context, cause: error });
  } finally {
    await host.remove(CHECK_COPY);
  }
}
