/**
 * One pass at a time per key (a cluster): a kick while its pass runs asks for one more pass
 * after it, never two at once and never a queue, so a burst of changes costs one extra pass.
 */
export class SerialPasses {
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private closed = false;
  private readonly pass: (key: string) => Promise<void>;

  /** `pass` reports its own failures: it never throws. */
  constructor(pass: (key: string) => Promise<void>) {
    this.pass = pass;
  }

  kick(key: string): void {
    if (this.closed) return;
    if (this.running.has(key)) {
      this.again.add(key);
      return;
    }
    const run = (async () => {
      do {
        this.again.delete(key);
        await this.pass(key);
      } while (this.again.has(key) && !this.closed);
    })().finally(() => this.running.delete(key));
    this.running.set(key, run);
  }

  /** Settles when no pass runs for the key. */
  async idle(key: string): Promise<void> {
    while (this.running.has(key)) await this.running.get(key);
  }

  /** No new passes; settles when the running ones end. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.running.values());
  }
}
