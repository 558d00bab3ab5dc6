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
  setRoot,
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
 * entities it touched and changed (root, a cluster's own fields, a node: one key each under
 * `state/`) are written in a batch, one etcd transaction, with the same group commit as the
 * journal. The transaction compares each key's mod revision with the one the mirror had when a
 * mutation first touched it, so a write based on what another replica has since changed is
 * refused as a whole: leases, fencing epochs and join slots (fields of the cluster entity) can never be
 * granted twice. When a batch is refused (or etcd does not answer), every mutation applied so
 * far fails, since any of them may have read what the batch changed, and their entities are
 * set back at once to what etcd last confirmed (kept as text for that), so that nothing reads
 * a refused change; the server runs requests that lost a race again (StoreConflict) and answers
 * 503 when etcd has no quorum (StoreUnavailable). What other replicas
 * write arrives through one watch on `state/` and is applied to the mirror in place (handlers
 * hold cluster objects across awaits), then announced so that long-polls wake.
 */

/** etcd's default --max-txn-ops: the most keys one batch compares and writes. */
export const DEFAULT_TXN_KEYS = 128;
/** How long one etcd call may take; a write that fails is tried this many times (the client moves to another member) before it is answered 503. */
const CALL_TIMEOUT_MS = 2000;
const WRITE_ATTEMPTS = 3;
/** A mutation's keys written by the batch in flight: its base is that batch's revision. */
const AFTER_IN_FLIGHT = 'in-flight';

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
  /** By entity key: the mod revision of what etcd last confirmed ('0': absent), and its value (JSON, null: absent). */
  private readonly revisions = new Map<string, string>();
  private readonly confirmed = new Map<string, string | null>();
  /** By entity key touched and not yet written: the revision the write must find, or a marker. */
  private readonly base = new Map<string, string>();
  /** Mutations not yet cut into a batch, with the keys each touched. */
  private pending: { version: number; keys: Set<string> }[] = [];
  private touching: Set<string> | undefined;
  private inFlight = new Set<string>();
  /** Watch events held while a batch is in flight, applied after it. */
  private held: { kv: IKeyValue; deleted: boolean }[] = [];
  private busy = false;
  /** The etcd revision the watch has delivered everything up to, and who waits for it to grow. */
  private watched = 0;
  private watchWaiters: { revision: number; resolve: () => void }[] = [];
  private appliedVersion = 0;
  private settledVersion = 0;
  private waiters: Waiter[] = [];
  /** The last failure, and the mutations it failed (those up to `version`). */
  private lastFailure: { version: number; error: Error } | undefined;
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
      revisions.set(key, `${item.mod_revision}\0${item.value.toString()}`);
    }
    if (state.format !== STATE_FORMAT)
      throw new PkeError(
        `the controller state in etcd has format ${String(state.format)}; this controller reads format ${STATE_FORMAT} only`,
      );
    const checked = controllerStateSchema.safeParse(state);
    if (!checked.success) throw new PkeError(`the controller state in etcd does not validate: ${checked.error.issues[0]?.message ?? ''}`);
    const store = new EtcdStateStore(kv, checked.data, options);
    for (const [key, both] of revisions) {
      const [revision = '0', value = ''] = both.split('\0');
      store.revisions.set(key, revision);
      store.confirmed.set(key, value);
    }
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

  mark(): number {
    return this.appliedVersion;
  }

  durable(since?: number): Promise<void> {
    const failure = this.lastFailure;
    if (since !== undefined && failure && failure.version > since) return Promise.reject(failure.error);
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
      while (this.settledVersion < this.appliedVersion && !this.closed) {
        if (this.pending.length === 0) this.settle(this.appliedVersion);
        else await this.writeBatch();
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
    const writes = ordered.map((key) => {
      const { v } = entityAt(this.current, key);
      return { key, json: v === null ? null : JSON.stringify(v) };
    });
    // A touched entity that did not change is neither written nor compared: what a mutation
    // decides is guarded by the entities it changes (a lease, an epoch, a slot are changes of the
    // cluster's entity), and a touch that changes nothing leaves no revision to trip on. (One
    // that another replica changed since the touch counts as changed: the write must fail.)
    const changed = writes.filter(
      ({ key, json }) => (this.confirmed.get(key) ?? null) !== json || expected.get(key) !== (this.revisions.get(key) ?? '0'),
    );
    const changedKeys = new Set(changed.map(({ key }) => key));
    for (const key of changedKeys) {
      // A later mutation that touched the key too is written with the value this batch writes.
      if (later.has(key)) this.base.set(key, AFTER_IN_FLIGHT);
      else this.base.delete(key);
    }
    // An unchanged key keeps the base a later mutation found, or none.
    for (const key of ordered) if (!later.has(key) && !changedKeys.has(key)) this.base.delete(key);
    if (changed.length === 0) {
      this.settle(last);
      return;
    }
    this.inFlight = changedKeys;
    this.busy = true;
    let outcome: { revision: string } | { error: Error; revision?: string } = { error: new StoreUnavailable('etcd was not asked') };
    for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt += 1) {
      outcome = await this.commit(expected, changed);
      // A retry after a write that was stored after all is refused (its revisions moved): a conflict, and the watch brings the write.
      if (!('error' in outcome) || !(outcome.error instanceof StoreUnavailable) || this.closed) break;
    }
    this.inFlight = new Set();
    if (!('error' in outcome)) {
      for (const { key, json } of changed) {
        this.revisions.set(key, json === null ? '0' : outcome.revision);
        this.confirmed.set(key, json);
      }
      for (const [key, value] of this.base) if (value === AFTER_IN_FLIGHT) this.base.set(key, this.revisions.get(key) ?? '0');
      this.releaseHeld();
      this.settle(last);
    } else {
      // Refused: what beat it is on its way through the watch; the requests run again once the mirror has it.
      if (outcome.revision !== undefined) await this.watchedUpTo(Number(outcome.revision));
      this.failAll(ordered, outcome.error);
    }
  }

  /** Resolves once the watch has delivered every change up to `revision`, or after a second. */
  private watchedUpTo(revision: number): Promise<void> {
    if (this.watched >= revision) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1000);
      this.watchWaiters.push({
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** One transaction: every key at its expected revision, or nothing written. */
  private async commit(
    expected: Map<string, string>,
    writes: { key: string; json: string | null }[],
  ): Promise<{ revision: string } | { error: Error; revision?: string }> {
    try {
      const [first = ROOT_KEY, ...rest] = writes.map(({ key }) => key);
      let txn = this.kv.if(etcdKey(first), 'Mod', '==', Number(expected.get(first)));
      for (const key of rest) txn = txn.and(etcdKey(key), 'Mod', '==', Number(expected.get(key)));
      const result = await txn
        .then(
          ...writes.map(({ key, json }) => (json === null ? this.kv.delete().key(etcdKey(key)) : this.kv.put(etcdKey(key)).value(json))),
        )
        .options(deadline())
        .commit();
      return result.succeeded
        ? { revision: String(result.header.revision) }
        : {
            error: new StoreConflict('another controller replica changed what this request changed; nothing of it was stored'),
            revision: String(result.header.revision),
          };
    } catch (error) {
      return { error: new StoreUnavailable(`etcd did not take the write: ${errorMessage(error)}`) };
    }
  }

  /**
   * Fails every mutation applied so far (any may have read what the batch changed) and sets
   * each entity they touched back to what etcd last confirmed; then applies what the watch
   * brought meanwhile. A write whose outcome etcd never told comes back through the watch if
   * it was stored after all.
   */
  private failAll(batch: string[], error: Error): void {
    const keys = new Set([...batch, ...this.base.keys(), ...this.pending.flatMap((mutation) => [...mutation.keys])]);
    this.pending = [];
    this.base.clear();
    const changed = new Set<string>();
    for (const key of [...keys].sort((a, b) => kindRank(a) - kindRank(b))) {
      const value = this.confirmed.get(key) ?? null;
      this.applyRemote(key, value, this.revisions.get(key) ?? '0', changed, true);
    }
    this.lastFailure = { version: this.appliedVersion, error };
    this.settle(this.appliedVersion, error);
    this.releaseHeld();
    this.announce(changed);
  }

  private async watch(startRevision: string): Promise<void> {
    const watcher = await this.kv.watch().prefix('').startRevision(startRevision).create();
    this.watcher = watcher;
    watcher.on('data', (response) => {
      this.watched = Math.max(this.watched, Number(response.header.revision));
      if (this.watchWaiters.length === 0) return;
      const waiting = this.watchWaiters;
      this.watchWaiters = waiting.filter((waiter) => waiter.revision > this.watched);
      for (const waiter of waiting) if (waiter.revision <= this.watched) waiter.resolve();
    });
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
    this.confirmed.set(key, value);
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
const rootSchema = controllerStateSchema.omit({ clusters: true });

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
      setRoot(state, entity.v);
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
