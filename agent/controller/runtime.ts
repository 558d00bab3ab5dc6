import type { Logger } from '../core/log.ts';
import type { PkiFile } from '../protocol/api.ts';
import { httpsClusterApi, parseAdminKubeconfig, type ClusterApi } from './cluster-api.ts';
import type { DataDir } from './data-dir.ts';
import { leaseDeadline } from './lease.ts';
import { slotDeadline } from './join-slots.ts';
import type { ClusterSignals } from './signals.ts';
import type { ClusterState } from './state.ts';
import type { StateStore } from './store.ts';
import type { TokenAuthority } from './tokens.ts';

/** What every route handler works with: the one instance of each part of a running controller. */
export class ControllerRuntime {
  readonly store: StateStore;
  readonly signals: ClusterSignals;
  readonly tokens: TokenAuthority;
  readonly dataDir: DataDir;
  readonly log: Logger;
  /** The URL nodes reach the controller at, and the CA they pin: both go into node configs. */
  readonly advertiseUrl: string;
  readonly caCertPem: string;
  /** Each cluster's shared control-plane files, loaded at start and when a cluster is created. */
  readonly pki = new Map<string, Record<PkiFile, string>>();
  private readonly clusterApis = new Map<string, ClusterApi>();
  private closing = false;

  constructor(parts: {
    store: StateStore;
    signals: ClusterSignals;
    tokens: TokenAuthority;
    dataDir: DataDir;
    log: Logger;
    advertiseUrl: string;
    caCertPem: string;
  }) {
    this.store = parts.store;
    this.signals = parts.signals;
    this.tokens = parts.tokens;
    this.dataDir = parts.dataDir;
    this.log = parts.log;
    this.advertiseUrl = parts.advertiseUrl;
    this.caCertPem = parts.caCertPem;
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

  /** Stores the leader's admin.conf (0600) and points the cluster's API client at it. */
  async replaceAdminKubeconfig(cluster: string, text: string): Promise<void> {
    const api = httpsClusterApi(parseAdminKubeconfig(text));
    await this.dataDir.writeAdminKubeconfig(cluster, text);
    const previous = this.clusterApis.get(cluster);
    this.clusterApis.set(cluster, api);
    await previous?.close();
  }

  /** Wakes the cluster's long-polls and arms a wake-up at its next lease or slot expiry. */
  changed(cluster: ClusterState): void {
    this.armDeadlines(cluster);
    this.signals.changed(cluster.id);
  }

  armDeadlines(cluster: ClusterState): void {
    const now = Date.now();
    for (const at of [leaseDeadline(cluster, now), slotDeadline(cluster, now)]) {
      if (at !== undefined) this.signals.expiresAt(cluster.id, at);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    this.signals.close();
    await Promise.all([...this.clusterApis.values()].map((api) => api.close()));
    this.clusterApis.clear();
  }
}
