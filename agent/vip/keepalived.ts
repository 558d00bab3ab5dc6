import { createHash } from 'node:crypto';
import type { ControlPlaneView } from '../protocol/api.ts';

/**
 * keepalived.conf for the API server VIP. Every node starts as BACKUP and the VRRP election
 * goes by priority: a node configured as MASTER would claim the VIP the moment keepalived
 * starts, even while its own API server is down (a rebooting node would pull the VIP away from
 * a healthy one). The one exception is the leader's config before kubeadm init, which no other
 * node runs alongside: see `beforeInit`. The health check has no weight, so a node whose
 * `/livez` fails goes to FAULT: it drops the VIP and sends a priority-0 advert, and a healthy
 * backup takes over after its skew time (well under a second) instead of waiting out the
 * master-down timer (3 x advert_int): keepalived discards a lower-priority advert rather than
 * preempting on it. Peers are unicast, since multicast is often filtered on vSphere networks.
 */

export const KEEPALIVED_CONFIG = '/etc/keepalived/keepalived.conf';

/**
 * The keepalived `virtual_router_id` of a cluster's API VIP (1..255): the first four bytes of
 * SHA-256 of the cluster id, mod 255, plus 1. The controller derives it for every node.
 */
export function virtualRouterId(clusterId: string): number {
  return (createHash('sha256').update(clusterId).digest().readUInt32BE(0) % 255) + 1;
}

const LEADER_PRIORITY = 150;
const ADDRESS_OWNER_PRIORITY = 255;
const LOWEST_PRIORITY = 101;
const CURL = '/usr/bin/curl';

export interface KeepalivedInput {
  nodeName: string;
  primaryIp: string;
  interface: string;
  vip: string;
  /** The API server's port: the VIP carries no port translation, so bind port and VIP port are one. */
  apiPort: number;
  view: ControlPlaneView;
  /** This node won the election (the view may no longer name a leader once the lease ends). */
  isLeader: boolean;
  /**
   * The leader's config before kubeadm init. Its API cannot answer yet, so there is no health
   * check; no other node runs keepalived yet and init needs the VIP, so it starts as MASTER with
   * VRRP's address-owner priority (255), the one priority at which keepalived takes the VIP at
   * once instead of after the master-down timer (~3 s). It is never enabled as a service (see
   * applyKeepalived): a node that lost the election during init cannot bring it back at boot.
   */
  beforeInit: boolean;
  /**
   * The unicast peers of the config keepalived runs now, kept when the view leaves this node
   * alone (its peers removed): keepalived refuses unicast settings without peers, and a reload
   * that falls back from unicast to multicast restarts the instance in BACKUP, dropping the VIP
   * for the master-down time (~3 s). Adverts to a removed node's address go nowhere.
   */
  runningPeers?: string[];
}

/**
 * Distinct priorities without coordination: the leader gets the top one, every other node one
 * below the top per place in the controller's registration order.
 */
export function vrrpPriority(view: ControlPlaneView, nodeName: string, isLeader: boolean): number {
  if (isLeader || view.leader === nodeName) return LEADER_PRIORITY;
  const index = view.nodes.findIndex((node) => node.name === nodeName);
  if (index < 0) throw new Error(`the controller's control-plane view does not list this node (${nodeName})`);
  const priority = LEADER_PRIORITY - 1 - index;
  if (priority < LOWEST_PRIORITY) {
    throw new Error(`too many control-plane nodes for distinct VRRP priorities: ${nodeName} is number ${index + 1}`);
  }
  return priority;
}

/** The priority a config carries: the address owner's before init, else by vrrpPriority. */
export function configuredPriority(input: Pick<KeepalivedInput, 'view' | 'nodeName' | 'isLeader' | 'beforeInit'>): number {
  return input.beforeInit ? ADDRESS_OWNER_PRIORITY : vrrpPriority(input.view, input.nodeName, input.isLeader);
}

/** Every other control-plane node's address, in registration order. */
export function unicastPeers(view: ControlPlaneView, nodeName: string, primaryIp: string): string[] {
  const peers = view.nodes.filter((node) => node.name !== nodeName && node.primaryIp !== primaryIp).map((node) => node.primaryIp);
  return [...new Set(peers)];
}

/**
 * No `init_fail`: a node starts healthy, so the leader keeps the VIP it took during kubeadm init
 * when this check arrives with the reload after init. A rebooting node whose API is still down
 * fails the check (fall 2, ~2 s) before its master-down timer (3 x advert_int) could let it
 * take the VIP.
 */
const HEALTH_CHECK = (port: number) => `vrrp_script pke_apiserver_livez {
  script "${CURL} --silent --fail --insecure --max-time 2 --output /dev/null https://127.0.0.1:${port}/livez"
  interval 1
  timeout 3
  fall 2
  rise 1
}

`;

/** The peers a config is rendered with: the view's, or while the view leaves this node alone, those it runs with. */
export function configuredPeers(input: Pick<KeepalivedInput, 'view' | 'nodeName' | 'primaryIp' | 'runningPeers'>): string[] {
  const peers = unicastPeers(input.view, input.nodeName, input.primaryIp);
  return peers.length === 0 ? (input.runningPeers ?? []) : peers;
}

/** The unicast peers of a keepalived.conf this module rendered (none for another or no file). */
export function peersOfConfig(text: string | undefined): string[] {
  const block = /\n {2}unicast_peer \{\n([^}]*)\n {2}\}/.exec(text ?? '')?.[1] ?? '';
  return block
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

export function renderKeepalivedConfig(input: KeepalivedInput): string {
  const priority = configuredPriority(input);
  const peers = configuredPeers(input);
  // keepalived refuses unicast settings without peers; a node that never had any advertises to the multicast group.
  const unicast =
    peers.length === 0
      ? '  # No other control-plane node yet: unicast settings follow once one registers.\n'
      : `  unicast_src_ip ${input.primaryIp}\n  unicast_peer {\n${peers.map((ip) => `    ${ip}\n`).join('')}  }\n`;
  return `# Written by pke-agent: the Kubernetes API server VIP ${input.vip}:${input.apiPort}. Rewritten when the control-plane nodes change.
global_defs {
  router_id ${input.nodeName}
  enable_script_security
  script_user root
}

${input.beforeInit ? '' : HEALTH_CHECK(input.apiPort)}vrrp_instance pke_api_vip {
  state ${input.beforeInit ? 'MASTER' : 'BACKUP'}
  interface ${input.interface}
  virtual_router_id ${input.view.virtualRouterId}
  priority ${priority}
  advert_int 1
${unicast}  virtual_ipaddress {
    ${input.vip}/32 dev ${input.interface}
  }
${input.beforeInit ? '  # No health check until kubeadm init has brought the API server up.\n' : '  track_script {\n    pke_apiserver_livez\n  }\n'}}
`;
}
