import { errorMessage } from '../../core/errors.ts';
import { SerialPasses } from '../../core/serial-passes.ts';
import { removalRequestSchema } from '../../protocol/api.ts';
import type { ClusterApi } from '../kubernetes/cluster-api.ts';
import { replacementName } from '../pools/desired.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState, NodeState } from '../store/state.ts';
import { activeUpgrade, nextInLine, replacementOf } from './upgrade.ts';

/**
 * An upgrade by rolling replacement (strategy `replace`), driven by the controller. First,
 * kubeadm's ClusterConfiguration is set to the new version: a control-plane join deploys the
 * control plane of the version it names (a template holds its own release's images only, so
 * without this the join fails its image preflight). Then, node by node
 * in the upgrade's order, one new node in, one old node out: the pools clone a replacement VM
 * from the new version's template (the pool's lowest free number), it joins through the join
 * slot like any node, and once its Node is Ready on the new version in the cluster's API the old
 * node is removed as `controller node remove` removes it (drain, VIP hand-over, etcd member,
 * token, VM). Each step is in the state, so a restarted controller takes up where it was; a
 * failed step stops the rollout there, and status says where.
 */
export class ReplacementUpgrades {
  private readonly runtime: ControllerRuntime;
  private readonly passes: SerialPasses;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(runtime: ControllerRuntime, options: { intervalMs: number }) {
    this.runtime = runtime;
    this.intervalMs = options.intervalMs;
    this.passes = new SerialPasses((clusterId) => this.pass(clusterId));
  }

  /** Passes over every cluster being replaced now (a restart takes up where it was) and then on the interval. */
  start(): void {
    const all = () => {
      for (const cluster of Object.values(this.runtime.store.state.clusters)) this.kick(cluster.id);
    };
    all();
    this.timer = setInterval(all, this.intervalMs);
    this.timer.unref();
  }

  kick(clusterId: string): void {
    const cluster = this.runtime.store.state.clusters[clusterId];
    if (cluster && activeUpgrade(cluster)?.strategy === 'replace') this.passes.kick(clusterId);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.passes.close();
  }

  private async pass(clusterId: string): Promise<void> {
    const cluster = this.runtime.store.state.clusters[clusterId];
    if (!cluster) return;
    let error: string | undefined;
    try {
      await this.advance(cluster);
    } catch (e) {
      error = errorMessage(e);
    }
    const upgrade = activeUpgrade(cluster);
    if (upgrade && upgrade.error !== error) {
      if (error !== undefined) this.runtime.log.warn('upgrade.replace.blocked', { cluster: cluster.id, node: upgrade.holder, error });
      this.runtime.store.mutate((_, touch) => {
        upgrade.error = error;
        touch.cluster(cluster.id);
      });
      this.runtime.changed(cluster);
    }
  }

  /** Takes every step that is due now; returns when the next one waits for a node or a removal. */
  private async advance(cluster: ClusterState): Promise<void> {
    for (;;) {
      const upgrade = activeUpgrade(cluster);
      if (upgrade?.strategy !== 'replace') return;
      const api = await this.runtime.clusterApi(cluster.id);
      if (!api) throw new Error(`the controller has no admin kubeconfig for cluster ${cluster.id}`);
      if (upgrade.kubeadmConfigAt === undefined) {
        const changed = await api.setKubeadmKubernetesVersion(upgrade.to);
        this.runtime.store.mutate((_, touch) => {
          upgrade.kubeadmConfigAt = Date.now();
          touch.cluster(cluster.id);
        });
        this.runtime.log.info('upgrade.kubeadm-config', { cluster: cluster.id, to: upgrade.to, changed });
      }
      const holder = upgrade.holder === undefined ? this.grant(cluster) : cluster.nodes[upgrade.holder];
      if (!holder) {
        this.finish(cluster);
        return;
      }
      if (holder.removedAt !== undefined) {
        this.replaced(cluster, holder);
        continue;
      }
      if (holder.removal === undefined && (await this.replacementReady(cluster, api, holder))) {
        await this.runtime.removals.start(cluster, removalRequestSchema.parse({ node: holder.name }));
        this.runtime.log.info('upgrade.replace.removing', { cluster: cluster.id, node: holder.name });
      }
      // The replacement is on its way, or the old node's removal runs (or failed: status shows where).
      return;
    }
  }

  /** The next node's turn: its replacement named (pools/ clones it); undefined when every node is done. */
  private grant(cluster: ClusterState): NodeState | undefined {
    const upgrade = activeUpgrade(cluster)!;
    const next = nextInLine(cluster);
    const old = next === undefined ? undefined : cluster.nodes[next];
    if (!old) return undefined;
    const replacement = replacementName(cluster, old.pool);
    this.runtime.store.mutate((_, touch) => {
      upgrade.holder = old.name;
      old.upgrade = { to: upgrade.to, grantedAt: Date.now(), replacement };
      touch.cluster(cluster.id);
      touch.node(cluster.id, old.name);
    });
    this.runtime.log.info('upgrade.replace.cloning', { cluster: cluster.id, node: old.name, replacement, template: upgrade.template });
    this.runtime.changed(cluster);
    this.runtime.kickProvisioning(cluster.id);
    return old;
  }

  /** The replacement's Node is Ready in the cluster's API, its kubelet on the new version (another version is an error: the wrong template). */
  private async replacementReady(cluster: ClusterState, api: ClusterApi, old: NodeState): Promise<boolean> {
    const upgrade = activeUpgrade(cluster)!;
    const name = replacementOf(cluster, old.name);
    if (name === undefined || cluster.nodes[name]?.readyAt === undefined) return false;
    const info = await api.nodeInfo(name);
    if (!info.ready) return false;
    if (info.kubeletVersion !== `v${upgrade.to}`)
      throw new Error(
        `${name} is Ready with kubelet ${info.kubeletVersion ?? 'of no reported version'}, not v${upgrade.to}: template ${upgrade.template} does not run Kubernetes ${upgrade.to}`,
      );
    return true;
  }

  private replaced(cluster: ClusterState, old: NodeState): void {
    const upgrade = activeUpgrade(cluster)!;
    this.runtime.store.mutate((_, touch) => {
      old.upgrade = { ...old.upgrade, to: upgrade.to, upgradedAt: Date.now() };
      upgrade.holder = undefined;
      touch.node(cluster.id, old.name);
      touch.cluster(cluster.id);
    });
    this.runtime.log.info('upgrade.node-done', {
      cluster: cluster.id,
      node: old.name,
      replacement: old.upgrade?.replacement,
      to: upgrade.to,
    });
    this.runtime.changed(cluster);
  }

  /** Every node replaced: the cluster runs the new version, and new VMs come from the new template. */
  private finish(cluster: ClusterState): void {
    const upgrade = activeUpgrade(cluster)!;
    const template = upgrade.template!;
    this.runtime.store.mutate((_, touch) => {
      upgrade.finishedAt = Date.now();
      upgrade.error = undefined;
      cluster.spec.kubernetesVersion = upgrade.to;
      if (cluster.spec.controlPlanePlacement) cluster.spec.controlPlanePlacement.template = template;
      for (const pool of cluster.spec.pools) if (pool.placement) pool.placement.template = template;
      touch.cluster(cluster.id);
    });
    this.runtime.log.info('upgrade.finished', { cluster: cluster.id, to: upgrade.to, template });
    this.runtime.changed(cluster);
  }
}
