/**
 * Wake-ups for long-polls, per cluster. Handlers call `changed(cluster)` after a mutation;
 * deadlines (a lease or a join slot running out) are armed with `expiresAt`, one timer per
 * cluster for the earliest of them, so that waiters learn of an expiry the moment it happens
 * rather than on a polling tick.
 */
export class LongPollWakeups {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();

  /** Wakes every waiter of the cluster; each re-checks what it waits for. */
  changed(cluster: string): void {
    const set = this.waiters.get(cluster);
    if (!set) return;
    this.waiters.delete(cluster);
    for (const wake of set) wake();
  }

  /**
   * Resolves on the next change of the cluster, after `timeoutMs`, or when `signal` aborts,
   * whichever comes first. Never rejects.
   */
  next(cluster: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(cluster);
      if (!set) {
        set = new Set();
        this.waiters.set(cluster, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiters.get(cluster)?.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', done, { once: true });
      set.add(done);
    });
  }

  /**
   * Arms a wake-up of the cluster's waiters at `at` (epoch ms), unless an earlier one is armed;
   * waiters re-arm the next deadline when they wake.
   */
  expiresAt(cluster: string, at: number): void {
    const armed = this.timers.get(cluster);
    if (armed && armed.at <= at) return;
    if (armed) clearTimeout(armed.timer);
    // +1 ms: the state is compared with `now >= expiresAt` when the timer fires.
    const timer = setTimeout(
      () => {
        this.timers.delete(cluster);
        this.changed(cluster);
      },
      Math.max(0, at - Date.now() + 1),
    );
    timer.unref();
    this.timers.set(cluster, { at, timer });
  }

  /** Wakes every waiter (so that long-polls answer) and disarms all timers. */
  close(): void {
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const cluster of [...this.waiters.keys()]) this.changed(cluster);
  }
}
