import type { AgentConfig } from '../config/schema.ts';
import { CommandError, PkeError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import type { RegisterOutput } from '../journal/phase-outputs.ts';
import type { ControlPlaneView } from '../protocol/api.ts';
import {
  KEEPALIVED_CONFIG,
  configuredPeers,
  configuredPriority,
  peersOfConfig,
  renderKeepalivedConfig,
  type KeepalivedInput,
} from './keepalived.ts';

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

export interface ApplyKeepalivedInput {
  endpoint: AgentConfig['controlPlaneEndpoint'];
  /** This node, as register recorded it. */
  node: Pick<RegisterOutput, 'nodeName' | 'primaryIp' | 'interface'>;
  /** This node won the election. */
  isLeader: boolean;
  /** The controller's view of the control plane now. */
  view: ControlPlaneView;
  /** The leader's config before kubeadm init (see KeepalivedInput). */
  beforeInit: boolean;
}

const CHECK_COPY = `${KEEPALIVED_CONFIG}.pke-check`;

/**
 * Brings keepalived in line with the controller's control-plane view: renders the config, has
 * the real `keepalived -t` check it before it replaces the live file, enables the service
 * (except before init), starts it when stopped and reloads it when the config changed. Used by
 * the vip phase, `vip sync` and, on the leader, alongside `kubeadm init` (whose kubeconfigs
 * point at the VIP).
 */
export async function applyKeepalived(
  host: Host,
  log: Logger,
  { endpoint, node, isLeader, view, beforeInit }: ApplyKeepalivedInput,
): Promise<KeepalivedState> {
  const networkInterface = endpoint.interface ?? node.interface;
  const running = await host.readText(KEEPALIVED_CONFIG);
  const input: KeepalivedInput = {
    nodeName: node.nodeName,
    primaryIp: node.primaryIp,
    interface: networkInterface,
    vip: endpoint.vip,
    apiPort: endpoint.port,
    view,
    isLeader,
    beforeInit,
    runningPeers: peersOfConfig(running),
  };
  const text = renderKeepalivedConfig(input);

  const changed = running !== text;
  if (changed) {
    await checkConfig(host, log, text);
    await host.writeFile(KEEPALIVED_CONFIG, text, { mode: 0o644 });
  }

  const { keepalived } = await host.service.states(['keepalived']);
  let started = false;
  // The config before init is only ever run, never enabled: at boot, keepalived comes back only
  // with a node's final config (the image leaves keepalived disabled).
  if (!keepalived.active) {
    if (beforeInit) await host.service.start('keepalived');
    else await host.service.enableNow('keepalived');
    started = true;
  } else {
    if (!beforeInit && !keepalived.enabled) await host.service.enable('keepalived');
    if (changed) await host.service.reloadOrRestart('keepalived');
  }

  const state: KeepalivedState = {
    changed,
    started,
    interface: networkInterface,
    priority: configuredPriority(input),
    peers: configuredPeers(input),
    virtualRouterId: view.virtualRouterId,
  };
  log.info('vip.keepalived', { ...state, peers: state.peers.join(',') });
  return state;
}

/** `keepalived -t` on a copy next to the live file, so a rejected config never replaces a working one. */
async function checkConfig(host: Host, log: Logger, text: string): Promise<void> {
  if (!(await host.which('keepalived'))) {
    log.warn('vip.keepalived-check-skipped', { reason: 'keepalived is not on PATH' });
    return;
  }
  await host.writeFile(CHECK_COPY, text, { mode: 0o600 });
  try {
    // keepalived -t exits 0 for a missing file: the path must be absolute and real.
    const result = await host.run('keepalived', ['-t', '-f', host.file(CHECK_COPY)], {
      timeoutMs: 30_000,
      displayArgs: ['-t', '-f', KEEPALIVED_CONFIG],
    });
    for (const line of result.stderr.split('\n').filter((l) => l.trim())) log.warn('vip.keepalived-check', { line });
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    throw new PkeError(`keepalived rejected the rendered ${KEEPALIVED_CONFIG}: ${error.message}`, { context: error.context, cause: error });
  } finally {
    await host.remove(CHECK_COPY);
  }
}
