import { constants as fs } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { PkeError, errorMessage } from '../../core/errors.ts';
import { nameRecord } from '../../core/records.ts';
import { issuePath, type SchemaIssue } from '../../core/schema-issues.ts';
import { writeDurably } from './durable-file.ts';
import { STATE_FORMAT, controllerStateSchema, type ClusterState, type ControllerState, type NodeState } from './state.ts';

/**
 * The controller's state on disk: a snapshot (`state.json`) and a journal (`state.journal`).
 *
 * Mutations are plain synchronous functions applied to the in-memory state one after another
 * (the event loop is the single queue); each says which entities it changed (`touch`: the root,
 * a cluster's own fields, a node). Writing is group commit: a record with the JSON of every
 * entity touched since the last write is appended to the journal in one write on a file opened
 * with O_DSYNC, so a batch costs one trip to the thread pool and one device flush, whatever the
 * size of the state; mutations that arrive meanwhile ride along with the next batch.
 * `durable()` resolves once everything applied so far is on disk, and the server awaits it
 * before any 2xx answer. When the journal grows past a limit, and at start and clean stop,
 * the state is written as a new snapshot (temp file, fsync, rename, fsync of the directory)
 * and the journal emptied; each record carries a sequence number, and the snapshot the last
 * one it includes, so a crash between the two steps replays nothing twice.
 */

/** The journal is folded into a new snapshot beyond this size. */
const JOURNAL_LIMIT_BYTES = 16 * 1024 * 1024;

type Entity =
  | { t: 'root'; v: RootState }
  | { t: 'cluster'; c: string; v: ClusterShell | null }
  | { t: 'node'; c: string; n: string; v: NodeState | null };
type ClusterShell = Omit<ClusterState, 'nodes'>;
/** The state's own fields: everything but the clusters. */
type RootState = Omit<ControllerState, 'clusters'>;
type JournalRecord = Entity & { s: number };

interface Snapshot {
  journalSeq: number;
  state: ControllerState;
}

/** How a mutation says what it changed; only touched entities are written. */
export interface Touch {
  root(): void;
  /** The cluster's own fields (leader, join slot, revocations, ...), not its nodes. */
  cluster(id: string): void;
  node(cluster: string, name: string): void;
}

export interface StoreOptions {
  /**
   * Also compare the whole state after every write with what was written, and fail the write
   * when a mutation changed an entity it did not touch. For tests: it costs a full
   * serialization per write.
   */
  verifyTouches?: boolean;
}

export class StateStore {
  readonly file: string;
  readonly journalFile: string;
  private current: ControllerState;
  private readonly journal: FileHandle;
  private journalBytes = 0;
  private seq: number;
  private readonly verifyTouches: boolean;
  /** Entity keys touched since the last write. */
  private dirty = new Set<string>();
  /** With verifyTouches: the JSON of each entity as the files hold it, by entity key. */
  private written = new Map<string, string>();
  private appliedVersion = 0;
  private durableVersion = 0;
  private flushing: Promise<void> | undefined;
  private waiters: { version: number; resolve: () => void; reject: (error: Error) => void }[] = [];

  private constructor(file: string, journalFile: string, journal: FileHandle, state: ControllerState, seq: number, options: StoreOptions) {
    this.verifyTouches = options.verifyTouches ?? false;
    this.file = file;
    this.journalFile = journalFile;
    this.journal = journal;
    this.current = state;
    this.seq = seq;
  }

  /**
   * Loads the snapshot and replays the journal, or starts from `initial()` when there is
   * neither; then writes a fresh snapshot. Files that do not parse or validate are an error
   * naming them: never a silent reset.
   */
  static async open(file: string, initial: () => ControllerState, options: StoreOptions = {}): Promise<StateStore> {
    const journalFile = `${file.replace(/\.json$/, '')}.journal`;
    const snapshotText = await readOptional(file);
    const journalText = (await readOptional(journalFile)) ?? '';
    const snapshot: Snapshot = snapshotText === undefined ? { journalSeq: 0, state: initial() } : parseSnapshot(file, snapshotText);
    const seq = replay(snapshot, journalFile, journalText);
    const checked = controllerStateSchema.safeParse(snapshot.state);
    if (!checked.success)
      throw corrupt(file, `${journalText ? `after replaying ${journalFile}, ` : ''}${describeIssue(checked.error.issues[0])}`);

    const journal = await open(journalFile, fs.O_WRONLY | fs.O_APPEND | fs.O_CREAT | fs.O_DSYNC, 0o600);
    const store = new StateStore(file, journalFile, journal, checked.data, seq, options);
    await store.compact();
    return store;
  }

  get state(): Readonly<ControllerState> {
    return this.current;
  }

  /**
   * Applies `change` now, starts writing what it touched, and returns its result; `durable()`
   * tells when it is on disk. `change` must not await: it runs to completion before any other
   * mutation. A change that throws must throw before it changes anything.
   */
  mutate<T>(change: (state: ControllerState, touch: Touch) => T): T {
    const result = change(this.current, this.touch);
    this.appliedVersion += 1;
    this.flushing ??= this.flush();
    return result;
  }

  /** Resolves once every mutation applied so far is on disk. */
  durable(): Promise<void> {
    if (this.durableVersion >= this.appliedVersion) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => {
      this.waiters.push({ version: this.appliedVersion, resolve, reject });
    });
    this.flushing ??= this.flush();
    return done;
  }

  /** Writes what is pending, folds the journal into the snapshot and closes the journal. */
  async close(): Promise<void> {
    await this.durable().catch(() => undefined);
    await this.flushing;
    // Best effort: a journal left behind is replayed at the next start.
    await this.compact().catch(() => undefined);
    await this.journal.close();
  }

  private readonly touch: Touch = {
    root: () => this.dirty.add(ROOT_KEY),
    cluster: (id) => this.dirty.add(clusterKey(id)),
    node: (cluster, name) => this.dirty.add(nodeKey(cluster, name)),
  };

  private async flush(): Promise<void> {
    try {
      while (this.durableVersion < this.appliedVersion) {
        const version = this.appliedVersion;
        try {
          if (this.journalBytes > JOURNAL_LIMIT_BYTES) await this.compact();
          else await this.appendChanges();
        } catch (error) {
          this.settle(
            version,
            new PkeError(`cannot write the controller state to ${this.journalFile}: ${errorMessage(error)}`, { cause: error }),
          );
          return;
        }
        this.durableVersion = version;
        this.settle(version);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** One journal write with a record for every entity touched since the last one. */
  private async appendChanges(): Promise<void> {
    // Clusters before their nodes, so that a replay never meets a node of an unknown cluster.
    const touched = new Set([...this.dirty].sort((a, b) => kindRank(a) - kindRank(b)));
    this.dirty = new Set();
    if (this.verifyTouches) this.checkTouches(touched);
    const lines: string[] = [];
    for (const key of touched) {
      this.seq += 1;
      const entity = entityAt(this.current, key);
      // The record is built by hand so that the entity is serialized once.
      const head = JSON.stringify({
        s: this.seq,
        t: entity.t,
        ...('c' in entity ? { c: entity.c } : {}),
        ...('n' in entity ? { n: entity.n } : {}),
      });
      lines.push(`${head.slice(0, -1)},"v":${JSON.stringify(entity.v)}}\n`);
    }
    if (lines.length === 0) return;
    const bytes = Buffer.from(lines.join(''));
    try {
      const { bytesWritten } = await this.journal.write(bytes);
      if (bytesWritten !== bytes.length) throw new Error(`short write: ${bytesWritten} of ${bytes.length} bytes`);
    } catch (error) {
      for (const key of touched) this.dirty.add(key);
      throw error;
    }
    this.journalBytes += bytes.length;
  }

  /** Fails when an entity changed since the last write without being touched (a bug in a mutation). */
  private checkTouches(touched: Set<string>): void {
    const current = serialize(this.current);
    for (const [key, json] of current) {
      if (this.written.get(key) !== json && !touched.has(key))
        throw new Error(`a mutation changed ${key.replaceAll('\0', '/')} without touching it`);
    }
    for (const key of this.written.keys()) {
      if (!current.has(key) && !touched.has(key)) throw new Error(`a mutation removed ${key.replaceAll('\0', '/')} without touching it`);
    }
    this.written = current;
  }

  /** A new snapshot of the whole state, then an empty journal. */
  private async compact(): Promise<void> {
    this.dirty = new Set();
    if (this.verifyTouches) this.written = serialize(this.current);
    await writeDurably(this.file, `{"journalSeq":${this.seq},"state":${JSON.stringify(this.current)}}\n`);
    await this.journal.truncate(0);
    await this.journal.sync();
    this.journalBytes = 0;
  }

  private settle(version: number, error?: Error): void {
    const remaining: typeof this.waiters = [];
    for (const waiter of this.waiters) {
      if (waiter.version > version) remaining.push(waiter);
      else if (error) waiter.reject(error);
      else waiter.resolve();
    }
    this.waiters = remaining;
  }
}

const ROOT_KEY = 'root';
const clusterKey = (id: string) => `c\0${id}`;
const nodeKey = (cluster: string, name: string) => `n\0${cluster}\0${name}`;

function kindRank(key: string): number {
  return key === ROOT_KEY ? 0 : key.startsWith('c\0') ? 1 : 2;
}

/** The entity an entity key names, as it is now (`v: null` when it is gone). */
function entityAt(state: ControllerState, key: string): Entity {
  if (key === ROOT_KEY) {
    const { clusters: _clusters, ...root } = state;
    return { t: 'root', v: root };
  }
  const [kind, c = '', n = ''] = key.split('\0');
  const cluster = state.clusters[c];
  if (kind === 'c') return { t: 'cluster', c, v: cluster ? shellOf(cluster) : null };
  return { t: 'node', c, n, v: cluster?.nodes[n] ?? null };
}

function shellOf(cluster: ClusterState): ClusterShell {
  const { nodes: _nodes, ...shell } = cluster;
  return shell;
}

/** Every entity's JSON by key (for verifyTouches). */
function serialize(state: ControllerState): Map<string, string> {
  const out = new Map<string, string>([[ROOT_KEY, JSON.stringify(entityAt(state, ROOT_KEY).v)]]);
  for (const cluster of Object.values(state.clusters)) {
    out.set(clusterKey(cluster.id), JSON.stringify(shellOf(cluster)));
    for (const node of Object.values(cluster.nodes)) out.set(nodeKey(cluster.id, node.name), JSON.stringify(node));
  }
  return out;
}

/** Applies the journal's records newer than the snapshot; returns the last sequence number. */
function replay(snapshot: Snapshot, journalFile: string, text: string): number {
  let seq = snapshot.journalSeq;
  const lines = text.split('\n');
  // A last line without its newline is a write cut short by a crash: never acknowledged.
  if (!text.endsWith('\n')) lines.pop();
  lines.forEach((line, index) => {
    if (line === '') return;
    let record: JournalRecord;
    try {
      record = JSON.parse(line) as JournalRecord;
    } catch (error) {
      throw corrupt(journalFile, `line ${index + 1}: ${errorMessage(error)}`);
    }
    if (typeof record.s !== 'number' || !['root', 'cluster', 'node'].includes(record.t)) {
      throw corrupt(journalFile, `line ${index + 1} is not a journal record`);
    }
    if (record.s <= snapshot.journalSeq) return;
    applyRecord(snapshot.state, record, () =>
      corrupt(journalFile, `line ${index + 1} names cluster ${'c' in record ? record.c : '?'}, which does not exist`),
    );
    seq = record.s;
  });
  return seq;
}

function applyRecord(state: ControllerState, record: JournalRecord, missingCluster: () => Error): void {
  switch (record.t) {
    case 'root':
      Object.assign(state, record.v);
      return;
    case 'cluster':
      if (record.v === null) delete state.clusters[record.c];
      else state.clusters[record.c] = { ...record.v, nodes: state.clusters[record.c]?.nodes ?? nameRecord() };
      return;
    case 'node': {
      const cluster = state.clusters[record.c];
      if (!cluster) throw missingCluster();
      if (record.v === null) delete cluster.nodes[record.n];
      else cluster.nodes[record.n] = record.v;
      return;
    }
  }
}

function parseSnapshot(file: string, text: string): Snapshot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw corrupt(file, errorMessage(error));
  }
  const snapshot = json as Partial<Snapshot> | null;
  if (typeof snapshot !== 'object' || snapshot === null || typeof snapshot.journalSeq !== 'number' || typeof snapshot.state !== 'object') {
    throw corrupt(file, 'expected {"journalSeq": N, "state": {...}}');
  }
  const format = (snapshot.state as { format?: unknown }).format;
  if (format !== STATE_FORMAT) {
    throw new PkeError(
      `the controller state ${file} has format ${String(format)}; this controller reads format ${STATE_FORMAT} only. Start this version with a new --data-dir, or run the version that wrote it`,
      {
        context: { path: file },
      },
    );
  }
  const checked = controllerStateSchema.safeParse(snapshot.state);
  if (!checked.success) throw corrupt(file, describeIssue(checked.error.issues[0], 'state.'));
  return { journalSeq: snapshot.journalSeq, state: checked.data };
}

function describeIssue(issue: SchemaIssue | undefined, prefix = ''): string {
  if (!issue) return 'does not match the state schema';
  return `${prefix}${issuePath(issue) || '(top level)'}: ${issue.message}`;
}

function corrupt(file: string, reason: string): PkeError {
  return new PkeError(
    `the controller state ${file} is corrupt (${reason}); the controller will not start over it. Restore it from a backup, or move it away to start with no clusters`,
    { context: { path: file } },
  );
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
