import { setTimeout as sleep } from 'node:timers/promises';
import { PkeError } from '../../core/errors.ts';
import type { ClusterApi, NodePod, PodRef } from './cluster-api.ts';

/**
 * Draining a node through the cluster's API, as `kubectl drain` does: cordon it, then evict its
 * pods through the Eviction API so that PodDisruptionBudgets are respected (a refused eviction,
 * 429, is asked again every few seconds until the timeout), and wait until the evicted pods are
 * gone. DaemonSet pods (their controller would put them back at once, and tolerates the cordon)
 * and mirror pods (the kubelet's static pods; the API cannot evict them) are left, as kubectl
 * leaves them. A pod with no controller would not come back anywhere: it is evicted only with
 * `force`. With `force`, what is still there at the timeout (refused by a budget, or stuck
 * terminating on a dead node) is deleted at once.
 */

/** The part of the cluster's API a drain uses. */
export type DrainApi = Pick<ClusterApi, 'setNodeUnschedulable' | 'listNodePods' | 'evictPod' | 'deletePod' | 'podExists'>;

export interface DrainOptions {
  /** Evict pods with no controller, and delete at the timeout what could not be evicted. */
  force: boolean;
  /** How long evictions are asked again and evicted pods waited for. */
  timeoutMs: number;
  /** Between two evictions of a pod a budget protects (kubectl: 5 s). */
  retryMs?: number;
  /** Between two checks whether evicted pods are gone. */
  pollMs?: number;
  onEvent?: (event: DrainEvent) => void;
  signal?: AbortSignal;
}

export type DrainEvent =
  | { event: 'cordoned'; node: string }
  | { event: 'skipped'; pod: string; reason: 'daemonset' | 'mirror' }
  | { event: 'evicted'; pod: string }
  | { event: 'blocked'; pod: string; message: string }
  | { event: 'gone'; pod: string }
  | { event: 'deleted'; pod: string };

export interface DrainResult {
  /** False when the cluster has no such Node (a rerun after it was deleted): nothing was drained. */
  nodeFound: boolean;
  /** `namespace/name` of each pod evicted and gone, each deleted past its budget (`force`), each left. */
  evicted: string[];
  deleted: string[];
  skipped: string[];
}

export class DrainError extends PkeError {
  /** Pods a budget still protected at the timeout, pods evicted but not gone, pods with no controller. */
  readonly blocked: string[];
  readonly terminating: string[];
  readonly unmanaged: string[];

  constructor(message: string, pods: { blocked?: string[]; terminating?: string[]; unmanaged?: string[] }) {
    super(message);
    this.blocked = pods.blocked ?? [];
    this.terminating = pods.terminating ?? [];
    this.unmanaged = pods.unmanaged ?? [];
  }
}

const DEFAULT_RETRY_MS = 5_000;
const DEFAULT_POLL_MS = 1_000;
/** How many pod names an error line lists before `and N more`. */
const LISTED = 5;

export function podKey(pod: PodRef): string {
  return `${pod.namespace}/${pod.name}`;
}

/** Cordons `node` and drains it; throws DrainError naming the pods when it cannot finish. Rerunning it is safe. */
export async function drainNode(api: DrainApi, node: string, options: DrainOptions): Promise<DrainResult> {
  const retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const emit = options.onEvent ?? (() => {});
  const deadline = Date.now() + options.timeoutMs;
  const result: DrainResult = { nodeFound: true, evicted: [], deleted: [], skipped: [] };

  if ((await api.setNodeUnschedulable(node, true)) === 'gone') return { ...result, nodeFound: false };
  emit({ event: 'cordoned', node });

  const toEvict: NodePod[] = [];
  const unmanaged: string[] = [];
  for (const pod of await api.listNodePods(node)) {
    const skip = pod.mirror ? 'mirror' : pod.controller?.kind === 'DaemonSet' ? 'daemonset' : undefined;
    if (skip) {
      result.skipped.push(podKey(pod));
      emit({ event: 'skipped', pod: podKey(pod), reason: skip });
      continue;
    }
    const finished = pod.phase === 'Succeeded' || pod.phase === 'Failed';
    if (!pod.controller && !finished && !options.force) unmanaged.push(podKey(pod));
    toEvict.push(pod);
  }
  if (unmanaged.length > 0) {
    throw new DrainError(
      `cannot drain node ${node}: pods with no controller would not come back (${listed(unmanaged)}); --force evicts them`,
      { unmanaged },
    );
  }

  /** Pods not yet evicted, with when to ask again and the last refusal. */
  const pending = new Map<string, { pod: NodePod; nextTry: number; refusal?: string }>();
  for (const pod of toEvict) pending.set(podKey(pod), { pod, nextTry: 0 });
  /** Pods evicted (or already being deleted), waited for until gone. */
  const leaving = new Map<string, NodePod>();

  for (;;) {
    options.signal?.throwIfAborted();
    const now = Date.now();
    for (const [key, entry] of pending) {
      if (entry.nextTry > now) continue;
      const answer = await api.evictPod(entry.pod);
      if (answer.outcome === 'blocked') {
        if (entry.refusal !== answer.message) emit({ event: 'blocked', pod: key, message: answer.message });
        entry.refusal = answer.message;
        entry.nextTry = Date.now() + retryMs;
        continue;
      }
      pending.delete(key);
      if (answer.outcome === 'gone') {
        result.evicted.push(key);
        emit({ event: 'gone', pod: key });
      } else {
        emit({ event: 'evicted', pod: key });
        leaving.set(key, entry.pod);
      }
    }
    for (const [key, pod] of leaving) {
      if (await api.podExists(pod)) continue;
      leaving.delete(key);
      result.evicted.push(key);
      emit({ event: 'gone', pod: key });
    }
    if (pending.size === 0 && leaving.size === 0) return result;

    if (Date.now() >= deadline) {
      const blocked = [...pending.keys()];
      const terminating = [...leaving.keys()];
      if (!options.force) {
        const why = [
          blocked.length > 0
            ? `evictions still refused for ${listed(blocked)} (${[...pending.values()][0]?.refusal ?? 'no answer yet'})`
            : '',
          terminating.length > 0 ? `evicted pods not gone: ${listed(terminating)}` : '',
        ].filter(Boolean);
        throw new DrainError(`draining node ${node} timed out after ${options.timeoutMs} ms: ${why.join('; ')}; --force deletes them`, {
          blocked,
          terminating,
        });
      }
      for (const { pod } of [...pending.values(), ...[...leaving.values()].map((pod) => ({ pod }))]) {
        await api.deletePod(pod);
        result.deleted.push(podKey(pod));
        emit({ event: 'deleted', pod: podKey(pod) });
      }
      return result;
    }
    const nextTry = Math.min(...[...pending.values()].map((entry) => entry.nextTry));
    const wait = leaving.size > 0 ? pollMs : Math.max(0, nextTry - Date.now());
    await sleep(Math.max(1, Math.min(wait, pollMs, deadline - Date.now())), undefined, { signal: options.signal });
  }
}

function listed(pods: string[]): string {
  const shown = pods.slice(0, LISTED).join(', ');
  return pods.length > LISTED ? `${shown} and ${pods.length - LISTED} more` : shown;
}
