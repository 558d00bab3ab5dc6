import { nameRecord } from '../../core/records.ts';
import type { ClusterState, ControllerState, NodeState } from './state.ts';

/**
 * What both state backends serve (the data dir's StateStore, the etcd store): the controller's
 * state in memory, changed by synchronous mutations that say which entities they touched (the
 * root, a cluster's own fields, a node), and `durable()`, awaited before any 2xx answer.
 */
export interface ControllerStore {
  readonly state: Readonly<ControllerState>;
  /**
   * Applies `change` now and returns its result; `durable()` tells when it is stored. `change`
   * must not await, and a change that throws must throw before it changes anything.
   */
  mutate<T>(change: (state: ControllerState, touch: Touch) => T): T;
  /** A mark of the mutations applied so far, for `durable(since)`. */
  mark(): number;
  /**
   * Resolves once every mutation applied so far is stored. Rejects with StoreConflict when one
   * of them, or one applied after `mark()` returned `since`, lost a race with another replica
   * (the request may be run again), with StoreUnavailable when the store cannot take writes.
   */
  durable(since?: number): Promise<void>;
  /** Tells `listener` of each cluster that changed through another replica (shared stores only). */
  onRemoteChange(listener: (cluster: string) => void): void;
  close(): Promise<void>;
}

/** How a mutation says what it changed; only touched entities are written. */
export interface Touch {
  root(): void;
  /** The cluster's own fields (leader, join slot, revocations, ...), not its nodes. */
  cluster(id: string): void;
  node(cluster: string, name: string): void;
}

/** Another replica changed what a mutation touched before it was stored: nothing of it was kept. */
export class StoreConflict extends Error {
  override readonly name = 'StoreConflict';
}

/** The shared store did not take a write (no quorum, unreachable); nothing of it was acknowledged. */
export class StoreUnavailable extends Error {
  override readonly name = 'StoreUnavailable';
}

export type Entity =
  | { t: 'root'; v: RootState }
  | { t: 'cluster'; c: string; v: ClusterShell | null }
  | { t: 'node'; c: string; n: string; v: NodeState | null };
export type ClusterShell = Omit<ClusterState, 'nodes'>;
/** The state's own fields: everything but the clusters. */
export type RootState = Omit<ControllerState, 'clusters'>;

export const ROOT_KEY = 'root';
export const clusterKey = (id: string) => `c\0${id}`;
export const nodeKey = (cluster: string, name: string) => `n\0${cluster}\0${name}`;

export function kindRank(key: string): number {
  return key === ROOT_KEY ? 0 : key.startsWith('c\0') ? 1 : 2;
}

/** The entity an entity key names, as it is now (`v: null` when it is gone). */
export function entityAt(state: ControllerState, key: string): Entity {
  if (key === ROOT_KEY) {
    const { clusters: _clusters, ...root } = state;
    return { t: 'root', v: root };
  }
  const [kind, c = '', n = ''] = key.split('\0');
  const cluster = state.clusters[c];
  if (kind === 'c') return { t: 'cluster', c, v: cluster ? shellOf(cluster) : null };
  return { t: 'node', c, n, v: cluster?.nodes[n] ?? null };
}

export function shellOf(cluster: ClusterState): ClusterShell {
  const { nodes: _nodes, ...shell } = cluster;
  return shell;
}

/** Every entity's JSON by key. */
export function serialize(state: ControllerState): Map<string, string> {
  const out = new Map<string, string>([[ROOT_KEY, JSON.stringify(entityAt(state, ROOT_KEY).v)]]);
  for (const cluster of Object.values(state.clusters)) {
    out.set(clusterKey(cluster.id), JSON.stringify(shellOf(cluster)));
    for (const node of Object.values(cluster.nodes)) out.set(nodeKey(cluster.id, node.name), JSON.stringify(node));
  }
  return out;
}

/** Sets one entity of the state to `entity.v` (absent when null). */
export function applyEntity(state: ControllerState, entity: Entity, missingCluster: () => Error): void {
  switch (entity.t) {
    case 'root':
      setRoot(state, entity.v);
      return;
    case 'cluster':
      if (entity.v === null) delete state.clusters[entity.c];
      else state.clusters[entity.c] = { ...entity.v, nodes: state.clusters[entity.c]?.nodes ?? nameRecord() };
      return;
    case 'node': {
      const cluster = state.clusters[entity.c];
      if (!cluster) throw missingCluster();
      if (entity.v === null) delete cluster.nodes[entity.n];
      else cluster.nodes[entity.n] = entity.v;
      return;
    }
  }
}

/** The root's fields set to `root`'s, a field it lacks removed. */
export function setRoot(state: ControllerState, root: RootState): void {
  state.format = root.format;
  state.adminTokenId = root.adminTokenId;
  if (root.accessTokens) state.accessTokens = root.accessTokens;
  else delete state.accessTokens;
}
