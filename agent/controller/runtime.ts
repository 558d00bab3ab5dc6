import type { Logger } from '../core/log.ts';
import type { PkiFile } from '../protocol/api.ts';
import {
  ClusterApiError,
  assertClusterKubeconfig,
  httpsClusterApi,
  parseAdminKubeconfig,
  type ClusterApi,
} from './kubernetes/cluster-api.ts';
import { clusterEndpoint } from './clusters/cluster-records.ts';
import type { ClusterFiles } from './store/cluster-files.ts';
import { leaseDeadline } from './formation/lease.ts';
import { badRequest, conflict } from './http/problem.ts';
import { slotDeadline } from './formation/join-slots.ts';
import type { LongPollWakeups } from './formation/long-poll-wakeups.ts';
import type { ClusterState } from './store/state.ts';
import type { ControllerStore } from './store/entities.ts';
import type { TokenAuthority } from './auth/tokens.ts';
import type { SnapshotFiles } from './backups/backups.ts';
import type { ControllerMetrics } from './metrics/controller-metrics.ts';
import type { NodeMachines } from './day-two/machines.ts';
import { NodeRemovals, type RemovalOptions } from './day-two/node-removal.ts';

/** What every route handler works with: the one instance of each part of a running controller. */
export class ControllerRuntime {
  readonly store: ControllerStore;
  readonly wakeups: LongPollWakeups;
  readonly tokens: TokenAuthority;
  /** Secrets and cluster files: the data dir's files, or etcd's sealed values. */
  readonly dataDir: ClusterFiles;
  /** Where uploaded etcd snapshots are kept: this controller's own data dir, with either backend. */
  readonly snapshots: SnapshotFiles;
  readonly log: Logger;
  /** The URL nodes reach the controller at, and the CA they pin: both go into node configs. */
  readonly advertiseUrl: string;
  /** The other replicas' URLs (etcd backend): node configs carry them after advertiseUrl. */
  readonly peerUrls: string[];
  readonly caCertPem: string;
  /** What /metrics shows; routes count phase durations and join-slot waits into it. */
  readonly metrics: ControllerMetrics;
  /** Wakes the web view's event streams when a request changed a cluster (its nodes' reports included). */
  readonly viewChanges: LongPollWakeups;
  /** Each cluster's shared control-plane files, loaded at start and when a cluster is created (or first asked for: made by another replica). */
  readonly pki = new Map<string, Record<PkiFile, string>>();
  /** Node removals in progress (day-two/). */
  readonly removals: NodeRemovals;
  /** The VMs the controller provisioned, where it provisions them (vsphere/, issue #15); removals destroy them. */
  machines: NodeMachines | undefined;
  private readonly clusterApis = new Map<string, ClusterApi>();
  /** By cluster: settles when the control-plane join grant being made there is made (or not). */
  private readonly controlPlaneGrants = new Map<string, Promise<void>>();
  private closing = false;
  /** Wakes the provisioning of a cluster (pools/); the controller sets it once the reconciler is made. */
  kickProvisioning: (clusterId: string) => void = () => {};
  /** Wakes an upgrade by rolling replacement (day-two/) on every change of its cluster; the controller sets it. */
  kickUpgrade: (clusterId: string) => void = () => {};

  constructor(parts: {
    store: ControllerStore;
    wakeups: LongPollWakeups;
    tokens: TokenAuthority;
    dataDir: ClusterFiles;
    snapshots: SnapshotFiles;
    log: Logger;
    advertiseUrl: string;
    peerUrls?: string[];
    caCertPem: string;
    metrics: ControllerMetrics;
    viewChanges: LongPollWakeups;
    removals?: RemovalOptions;
    machines?: NodeMachines;
  }) {
    this.store = parts.store;
    this.wakeups = parts.wakeups;
    this.tokens = parts.tokens;
    this.dataDir = parts.dataDir;
    this.snapshots = parts.snapshots;
    this.log = parts.log;
    this.advertiseUrl = parts.advertiseUrl;
    this.peerUrls = parts.peerUrls ?? [];
    this.caCertPem = parts.caCertPem;
    this.metrics = parts.metrics;
    this.viewChanges = parts.viewChanges;
    this.removals = new NodeRemovals(this, parts.removals);
    this.machines = parts.machines;
  }

  async clusterPki(cluster: string): Promise<Record<PkiFile, string>> {
    const loaded = this.pki.get(cluster);
    if (loaded) return loaded;
    const files = await this.dataDir.readClusterPki(cluster);
    this.pki.set(cluster, files);
    return files;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** The cluster's API, from the admin.conf its leader uploaded; undefined before that. */
  async clusterApi(cluster: string): Promise<ClusterApi | undefined> {
    const cached = this.clusterApis.get(cluster);
    if (cached) return cached;
    const text = await this.dataDir.readAdminKubeconfig(cluster);
    if (text === undefined) return undefined;
    // Another request may have made one while the file was read.
    const api = this.clusterApis.get(cluster) ?? httpsClusterApi(parseAdminKubeconfig(text));
    this.clusterApis.set(cluster, api);
    return api;
  }

  /**
   * Takes the admin.conf of the leader that initializes the cluster: checked against the
   * cluster (its CA, its endpoint), stored (0600), and the cluster's API client pointed at it.
   * Once the cluster is initialized it is set: the same text again changes nothing (a rerun of
   * the leader), any other is refused.
   */
  async acceptAdminKubeconfig(cluster: ClusterState, text: string): Promise<void> {
    if (cluster.leader.initialized) {
      const stored = await this.dataDir.readAdminKubeconfig(cluster.id);
      if (stored === text) return;
      if (stored !== undefined) throw conflict(`cluster ${cluster.id} is initialized and its admin kubeconfig is set; it is not replaced`);
    }
    const pki = await this.clusterPki(cluster.id);
    let api: ClusterApi;
    try {
      const kubeconfig = parseAdminKubeconfig(text);
      const caCertPem = pki['ca.crt'];
      assertClusterKubeconfig(kubeconfig, { caCertPem, endpoint: clusterEndpoint(cluster) });
      api = httpsClusterApi(kubeconfig);
    } catch (error) {
      if (error instanceof ClusterApiError) throw badRequest(`adminKubeconfig: ${error.message}`, 'adminKubeconfig');
      throw error;
    }
    await this.dataDir.writeAdminKubeconfig(cluster.id, text);
    const previous = this.clusterApis.get(cluster.id);
    this.clusterApis.set(cluster.id, api);
    await previous?.close();
  }

  /**
   * Replaces the admin.conf of an initialized cluster with a renewed one that `check` has found
   * to be the cluster's (controller/certificates/admin-kubeconfig.ts); the cluster's API client
   * follows it.
   */
  async replaceAdminKubeconfig(cluster: ClusterState, text: string): Promise<void> {
    const api = httpsClusterApi(parseAdminKubeconfig(text));
    await this.dataDir.writeAdminKubeconfig(cluster.id, text);
    const previous = this.clusterApis.get(cluster.id);
    this.clusterApis.set(cluster.id, api);
    await previous?.close();
  }

  /**
   * Marks a control-plane join grant in the making until `done` settles. Call it in the same
   * turn of the event loop as the slot is taken, so that worker grants woken by the same change
   * see it (`afterControlPlaneGrant`).
   */
  makingControlPlaneGrant(cluster: string, done: Promise<unknown>): void {
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.controlPlaneGrants.set(cluster, settled);
    void settled.then(() => {
      if (this.controlPlaneGrants.get(cluster) === settled) this.controlPlaneGrants.delete(cluster);
    });
  }

  /**
   * Waits for a control-plane join grant in the making in the cluster, if any. A worker's join
   * token is minted after it: every control-plane join is on the critical path of a cluster's
   * formation and a worker's is not, and a formation wakes the waiting control-plane node and
   * every waiting worker at once, all asking the cluster's API for a token.
   */
  async afterControlPlaneGrant(cluster: string): Promise<void> {
    // A control-plane grant woken by the same change is marked within this turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    await this.controlPlaneGrants.get(cluster);
  }

  /** Wakes the cluster's long-polls and arms a wake-up at its next lease or slot expiry. */
  changed(cluster: ClusterState): void {
    this.armDeadlines(cluster);
    this.wakeups.changed(cluster.id);
    this.kickUpgrade(cluster.id);
  }

  armDeadlines(cluster: ClusterState): void {
    const now = Date.now();
    for (const at of [leaseDeadline(cluster, now), slotDeadline(cluster, now)]) {
      if (at !== undefined) this.wakeups.expiresAt(cluster.id, at);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.removals.close();
    this.wakeups.close();
    this.viewChanges.close();
    await Promise.all([...this.clusterApis.values()].map((api) => api.close()));
    this.clusterApis.clear();
  }
}
