import type { Etcd3, IKeyValue, Namespace, Watcher } from 'etcd3';
import { PkeError, errorMessage } from '../../core/errors.ts';
import { nameRecord } from '../../core/records.ts';
import {
  ROOT_KEY,
  StoreConflict,
  StoreUnavailable,
  clusterKey,
  entityAt,
  kindRank,
  nodeKey,
  type ControllerStore,
  type Entity,
  type Touch,
} from './entities.ts';
import {
  STATE_FORMAT,
  clusterStateSchema,
  controllerStateSchema,
  nodeStateSchema,
  type ClusterState,
  type ControllerState,
} from './state.ts';

/**
 * The controller's state in etcd, shared by several controller replicas.
 *
 * Each replica keeps the whole state in memory (a mirror) and serves the same synchronous
 * mutation/touch model as the data dir: a mutation is applied to the mirror at once, and the
 * entities it touched (root, a cluster's own fields, a node: one key each under `state/`) are
 * written in a batch, one etcd transaction, with the same group commit as the journal. The
 * transaction compares each key's mod revision with the one the mirror had when a mutation
 * first touched it, so a write based on what another replica has since changed is refused as
 * a whole: leases, fencing epochs and join slots (fields of the cluster entity) can never be
 * granted twice. A refused batch fails its requests with StoreConflict (the server runs them
 * again on the corrected mirror) and its keys are read back from etcd. What other replicas
 * write arrives through one watch on `state/` and is applied to the mirror in place (handlers
 * hold cluster objects across awaits), then announced so that long-polls wake.
 */

/** etcd's default --max-txn-ops: the most keys one batch compares and writes. */
export const DEFAULT_TXN_KEYS = 128;
/** How long one etcd call may take before the write is answered 503. */
const CALL_TIMEOUT_MS = 4000;
/** A mutation's keys written by the batch in flight: its base is that batch's revision. */
const AFTER_IN_FLIGHT = 'in-flight';
/** A mutation's keys written by a batch that failed: the mutation fails too. */
const FAILED = 'failed';

export interface EtcdStoreOptions {
  /** Keys per transaction, at most the etcd cluster's --max-txn-ops. */
  txnKeys?: number;
  /** Told when something goes wrong in the background (the watch). */
  warn?: (event: string, fields: Record<string, string>) => void;
}

interface Waiter {
  version: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class EtcdStateStore implements ControllerStore {
  private readonly kv: Namespace;
  private readonly current: ControllerState;
  /** By entity key: the mod revision of what the mirror holds ('0': absent). */
  private readonly revisions = new Map<string, string>();
  /** By entity key touched and not yet written: the revision the write must find, or a marker. */
  private readonly base = new Map<string, string>();
  /** Mutations not yet cut into a batch, with the keys each touched. */
  private pending: { version: number; keys: Set<string> }[] = [];
  private touching: Set<string> | undefined;
  private inFlight = new Set<string>();
  /** Keys whose mirror value may hold what etcd refused or never confirmed: read back before writing more. */
  private readonly reload = new Set<string>();
  /** Watch events held while a batch or a read-back is in flight, applied after it. */
  private held: { kv: IKeyValue; deleted: boolean }[] = [];
  private busy = false;
  private appliedVersion = 0;
  private settledVersion = 0;
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private readonly listeners: ((cluster: string) => void)[] = [];
  private watcher: Watcher | undefined;
  private readonly txnKeys: number;
  private readonly warn: NonNullable<EtcdStoreOptions['warn']>;
  private closed = false;

  private constructor(kv: Namespace, state: ControllerState, options: EtcdStoreOptions) {
    this.kv = kv;
    this.current = state;
    this.txnKeys = options.txnKeys ?? DEFAULT_TXN_KEYS;
    this.warn = options.warn ?? (() => undefined);
  }

  /**
   * Reads the whole state under `client`'s namespace at one revision and watches it from the
   * next. An empty namespace starts from `initial()`; what does not validate is an error naming
   * the key, never a silent reset.
   */
  static async open(client: Etcd3 | Namespace, initial: () => ControllerState, options: EtcdStoreOptions = {}): Promise<EtcdStateStore> {
    const kv = client.namespace('state/');
    let response: Awaited<ReturnType<ReturnType<Namespace['getAll']>['exec']>>;
    try {
      response = await kv.getAll().options(deadline()).exec();
    } catch (error) {
      throw new PkeError(`cannot read the controller state from etcd: ${errorMessage(error)}`, { cause: error });
    }
    const state = initial();
    const revisions = new Map<string, string>();
    const kvs = [...response.kvs].sort((a, b) => kindRank(entityKey(a.key.toString())) - kindRank(entityKey(b.key.toString())));
    for (const item of kvs) {
      const key = entityKey(item.key.toString());
      applyInPlace(state, parseEntity(key, item.value.toString()));
      revisions.set(key, String(item.mod_revision));
    }
    if (state.format !== STATE_FORMAT)
      throw new PkeError(
        `the controller state in etcd has format ${String(state.format)}; this controller reads format ${STATE_FORMAT} only`,
      );
    const checked = controllerStateSchema.safeParse(state);
    if (!checked.success) throw new PkeError(`the controller state in etcd does not validate: ${checked.error.issues[0]?.message ?? ''}`);
    const store = new EtcdStateStore(kv, checked.data, options);
    for (const [key, revision] of revisions) store.revisions.set(key, revision);
    await store.watch(String(Number(response.header.revision) + 1));
    return store;
  }

  get state(): Readonly<ControllerState> {
    return this.current;
  }

  mutate<T>(change: (state: ControllerState, touch: Touch) => T): T {
    const keys = new Set<string>();
    this.touching = keys;
    let result: T;
    try {
      result = change(this.current, this.touch);
    } finally {
      this.touching = undefined;
    }
    this.appliedVersion += 1;
    this.pending.push({ version: this.appliedVersion, keys });
    this.flushing ??= this.flush();
    return result;
  }

  durable(): Promise<void> {
    if (this.settledVersion >= this.appliedVersion) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ version: this.appliedVersion, resolve, reject });
    });
  }

  onRemoteChange(listener: (cluster: string) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await this.durable().catch(() => undefined);
    this.closed = true;
    await this.flushing;
    await this.watcher?.cancel().catch(() => undefined);
  }

  private readonly touch: Touch = {
    root: () => this.touchKey(ROOT_KEY),
    cluster: (id) => this.touchKey(clusterKey(id)),
    node: (cluster, name) => this.touchKey(nodeKey(cluster, name)),
  };

  private touchKey(key: string): void {
    this.touching?.add(key);
    if (this.base.has(key)) return;
    this.base.set(key, this.inFlight.has(key) ? AFTER_IN_FLIGHT : (this.revisions.get(key) ?? '0'));
  }

  private async flush(): Promise<void> {
    try {
      while (this.settledVersion < this.appliedVersion || this.reload.size > 0) {
        if (this.closed) return;
        if (this.reload.size > 0 && !(await this.readBack())) {
          // etcd cannot answer: what waits now cannot be stored before etcd is back.
          this.failPending(new StoreUnavailable('etcd has no quorum or cannot be reached; the write was not stored'));
          await new Promise((resolve) => setTimeout(resolve, 500));
          continue;
        }
        if (this.pending.length === 0) {
          this.settle(this.appliedVersion);
          continue;
        }
        await this.writeBatch();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Cuts whole mutations (at most txnKeys keys, at least one mutation) and writes them in one transaction. */
  private async writeBatch(): Promise<void> {
    const keys = new Set<string>();
    let last = 0;
    let taken = 0;
    for (const mutation of this.pending) {
      const added = [...mutation.keys].filter((key) => !keys.has(key));
      if (taken > 0 && keys.size + added.length > this.txnKeys) break;
      for (const key of added) keys.add(key);
      last = mutation.version;
      taken += 1;
    }
    this.pending = this.pending.slice(taken);
    const later = new Set(this.pending.flatMap((mutation) => [...mutation.keys]));
    const ordered = [...keys].sort((a, b) => kindRank(a) - kindRank(b));
    const expected = new Map(ordered.map((key) => [key, this.base.get(key) ?? this.revisions.get(key) ?? '0']));
    for (const key of ordered) {
      // A later mutation that touched the key too is written with the value this batch writes.
      if (later.has(key)) this.base.set(key, AFTER_IN_FLIGHT);
      else this.base.delete(key);
    }
    if (ordered.some((key) => expected.get(key) === FAILED)) {
      this.batchFailed(ordered, last, new StoreConflict('a write this one built on was not stored'));
      return;
    }

    const writes = ordered.map((key) => ({ key, entity: entityAt(this.current, key) }));
    this.inFlight = new Set(ordered);
    this.busy = true;
    let outcome: { revision: string } | { error: Error };
    try {
      let txn = this.kv.if(etcdKey(ordered[0] ?? ROOT_KEY), 'Mod', '==', Number(expected.get(ordered[0] ?? ROOT_KEY)));
      for (const key of ordered.slice(1)) txn = txn.and(etcdKey(key), 'Mod', '==', Number(expected.get(key)));
      const result = await txn
        .then(
          ...writes.map(({ key, entity }) =>
            entity.v === null ? this.kv.delete().key(etcdKey(key)) : this.kv.put(etcdKey(key)).value(JSON.stringify(entity.v)),
          ),
        )
        .options(deadline())
        .commit();
      outcome = result.succeeded
        ? { revision: String(result.header.revision) }
        : { error: new StoreConflict('another controller replica changed what this request changed; nothing of it was stored') };
    } catch (error) {
      outcome = { error: new StoreUnavailable(`etcd did not take the write: ${errorMessage(error)}`) };
    }
    this.inFlight = new Set();
    if ('revision' in outcome) {
      for (const { key, entity } of writes) this.revisions.set(key, entity.v === null ? '0' : outcome.revision);
      for (const [key, value] of this.base) if (value === AFTER_IN_FLIGHT) this.base.set(key, outcome.revision);
      this.releaseHeld();
      this.settle(last);
    } else this.batchFailed(ordered, last, outcome.error);
  }

  /** Fails the batch's requests and schedules its keys to be read back (the mirror holds what etcd does not). */
  private batchFailed(keys: string[], last: number, error: Error): void {
    for (const key of keys) this.reload.add(key);
    for (const [key, value] of this.base) if (value === AFTER_IN_FLIGHT) this.base.set(key, FAILED);
    this.busy = false;
    this.releaseHeld();
    this.settle(last, error);
  }

  /** Every mutation applied so far fails; its keys are read back once etcd answers. */
  private failPending(error: Error): void {
    for (const mutation of this.pending) for (const key of mutation.keys) this.reload.add(key);
    for (const key of this.base.keys()) this.reload.add(key);
    this.pending = [];
    this.base.clear();
    this.settle(this.appliedVersion, error);
  }

  /** Reads the keys to reload from etcd into the mirror; false when etcd cannot answer. */
  private async readBack(): Promise<boolean> {
    const keys = [...this.reload].sort((a, b) => kindRank(a) - kindRank(b));
    this.busy = true;
    try {
      const found = await Promise.all(keys.map((key) => this.kv.get(etcdKey(key)).options(deadline()).exec()));
      const changed = new Set<string>();
      keys.forEach((key, i) => {
        const item = found[i]?.kvs[0];
        const revision = item ? String(item.mod_revision) : '0';
        // A mutation that touched the key since builds on the old value: it fails at its write.
        if (this.base.has(key)) this.base.set(key, FAILED);
        this.reload.delete(key);
        this.applyRemote(key, item?.value.toString() ?? null, revision, changed, true);
      });
      this.announce(changed);
      return true;
    } catch (error) {
      this.warn('store.etcd.unavailable', { error: errorMessage(error) });
      return false;
    } finally {
      this.busy = false;
      this.releaseHeld();
    }
  }

  private async watch(startRevision: string): Promise<void> {
    const watcher = await this.kv.watch().prefix('').startRevision(startRevision).create();
    this.watcher = watcher;
    watcher.on('put', (kv) => this.onEvent(kv, false));
    watcher.on('delete', (kv) => this.onEvent(kv, true));
    watcher.on('disconnected', (error) => this.warn('store.etcd.watch.disconnected', { error: errorMessage(error) }));
    watcher.on('error', (error) => this.warn('store.etcd.watch.error', { error: errorMessage(error) }));
  }

  private onEvent(kv: IKeyValue, deleted: boolean): void {
    if (this.busy) {
      this.held.push({ kv, deleted });
      return;
    }
    const changed = new Set<string>();
    this.applyEvent(kv, deleted, changed);
    this.announce(changed);
  }

  private releaseHeld(): void {
    this.busy = false;
    const held = this.held;
    this.held = [];
    const changed = new Set<string>();
    for (const { kv, deleted } of held) this.applyEvent(kv, deleted, changed);
    this.announce(changed);
  }

  private applyEvent(kv: IKeyValue, deleted: boolean, changed: Set<string>): void {
    const key = entityKey(kv.key.toString());
    this.applyRemote(key, deleted ? null : kv.value.toString(), String(kv.mod_revision), changed, false);
  }

  /** Sets the mirror's entity to what etcd holds at `revision`, unless the mirror has that or newer. */
  private applyRemote(key: string, value: string | null, revision: string, changed: Set<string>, force: boolean): void {
    const known = this.revisions.get(key) ?? '0';
    if (!force && Number(revision) <= Number(known)) return;
    try {
      applyInPlace(this.current, value === null ? absent(key) : parseEntity(key, value));
    } catch (error) {
      this.warn('store.etcd.bad-entity', { key: key.replaceAll('\0', '/'), error: errorMessage(error) });
      return;
    }
    this.revisions.set(key, revision);
    if (key !== ROOT_KEY) changed.add(key.split('\0')[1] ?? '');
  }

  private announce(clusters: Set<string>): void {
    for (const cluster of clusters) for (const listener of this.listeners) listener(cluster);
  }

  private settle(version: number, error?: Error): void {
    this.settledVersion = Math.max(this.settledVersion, version);
    const remaining: Waiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.version > version) remaining.push(waiter);
      else if (error) waiter.reject(error);
      else waiter.resolve();
    }
    this.waiters = remaining;
  }
}

function deadline(): { deadline: number } {
  return { deadline: Date.now() + CALL_TIMEOUT_MS };
}

/** Entity key (see entities.ts) to etcd key under `state/`: names are URI-encoded, so never contain `/`. */
function etcdKey(key: string): string {
  if (key === ROOT_KEY) return 'root';
  const [kind, c = '', n = ''] = key.split('\0');
  return kind === 'c' ? `c/${encodeURIComponent(c)}` : `n/${encodeURIComponent(c)}/${encodeURIComponent(n)}`;
}

function entityKey(etcd: string): string {
  if (etcd === 'root') return ROOT_KEY;
  const [kind, c = '', n = ''] = etcd.split('/');
  if (kind === 'c') return clusterKey(decodeURIComponent(c));
  if (kind === 'n') return nodeKey(decodeURIComponent(c), decodeURIComponent(n));
  throw new PkeError(`etcd key state/${etcd} is not a controller state key`);
}

const clusterShellSchema = clusterStateSchema.omit({ nodes: true });
const rootSchema = controllerStateSchema.pick({ format: true, adminTokenId: true });

/** One entity from its etcd value, validated (records of names come out without a prototype). */
function parseEntity(key: string, text: string): Entity {
  const json: unknown = JSON.parse(text);
  if (key === ROOT_KEY) return { t: 'root', v: rootSchema.parse(json) };
  const [kind, c = '', n = ''] = key.split('\0');
  if (kind === 'c') return { t: 'cluster', c, v: clusterShellSchema.parse(json) };
  return { t: 'node', c, n, v: nodeStateSchema.parse(json) };
}

function absent(key: string): Entity {
  if (key === ROOT_KEY) return { t: 'root', v: { format: STATE_FORMAT, adminTokenId: '' } };
  const [kind, c = '', n = ''] = key.split('\0');
  return kind === 'c' ? { t: 'cluster', c, v: null } : { t: 'node', c, n, v: null };
}

/**
 * Sets an entity in the mirror keeping the objects handlers hold: a cluster's record is
 * updated field by field (its nodes stay), a node's likewise.
 */
function applyInPlace(state: ControllerState, entity: Entity): void {
  switch (entity.t) {
    case 'root':
      state.format = entity.v.format;
      state.adminTokenId = entity.v.adminTokenId;
      return;
    case 'cluster': {
      const existing = state.clusters[entity.c];
      if (entity.v === null) delete state.clusters[entity.c];
      else if (existing) replaceFields(existing, entity.v, 'nodes');
      else state.clusters[entity.c] = { ...entity.v, nodes: nameRecord() } as ClusterState;
      return;
    }
    case 'node': {
      const cluster = state.clusters[entity.c];
      if (!cluster) throw new PkeError(`node ${entity.n} names cluster ${entity.c}, which the state does not have`);
      const existing = cluster.nodes[entity.n];
      if (entity.v === null) delete cluster.nodes[entity.n];
      else if (existing) replaceFields(existing, entity.v);
      else cluster.nodes[entity.n] = entity.v;
      return;
    }
  }
}

function replaceFields(target: object, source: object, keep?: string): void {
  const record = target as Record<string, unknown>;
  for (const field of Object.keys(record)) if (field !== keep && !(field in source)) delete record[field];
  Object.assign(record, source);
}
