import { nodeName } from '../config/node-name.ts';
import type { AgentConfig } from '../config/schema.ts';
import { type ClientOptions, ControllerTransport, NodeClient } from './client.ts';
import { API } from './routes.ts';
import type { DrainAnswer, UpgradeGrant } from './upgrade.ts';

/** What a node's `pke-agent upgrade` asks of the controller besides the bootstrap's calls. */
export interface UpgradeApi {
  /** Long-polls up to `waitSeconds` for this node's turn in the upgrade to `to`. */
  slot(to: string, waitSeconds: number): Promise<UpgradeGrant>;
  /** The controller cordons this node and evicts its pods; the request lasts as long as the drain may. */
  drain(timeoutSeconds: number): Promise<DrainAnswer>;
  uncordon(): Promise<void>;
  /** This node is Ready on `to`: the controller checks it and gives the slot to the next node. */
  upgraded(to: string): Promise<void>;
}

class UpgradeClient implements UpgradeApi {
  private readonly transport: ControllerTransport;
  private readonly self: { c: string; n: string };

  constructor(transport: ControllerTransport, cluster: string, node: string) {
    this.transport = transport;
    this.self = { c: cluster, n: node };
  }

  slot(to: string, waitSeconds: number): Promise<UpgradeGrant> {
    return this.transport.call(API.upgradeSlot, this.self, { body: { to }, query: { wait: waitSeconds }, waitSeconds });
  }

  drain(timeoutSeconds: number): Promise<DrainAnswer> {
    return this.transport.call(API.drain, this.self, { body: { timeoutSeconds }, waitSeconds: timeoutSeconds });
  }

  uncordon(): Promise<void> {
    return this.transport.call(API.uncordon, this.self);
  }

  upgraded(to: string): Promise<void> {
    return this.transport.call(API.upgraded, this.self, { body: { to } });
  }
}

/** The node's clients for an upgrade run, on one connection pool: the bootstrap's calls (status, events) and the upgrade's. */
export function createUpgradeClients(
  config: AgentConfig,
  options: Omit<ClientOptions, 'url' | 'caCert' | 'token'> = {},
): { node: NodeClient; upgrade: UpgradeApi } {
  const { url, caCert, token } = config.controller;
  const transport = new ControllerTransport({ ...options, url, caCert, token });
  const name = nodeName(config);
  return { node: new NodeClient(transport, config.cluster.id, name), upgrade: new UpgradeClient(transport, config.cluster.id, name) };
}
