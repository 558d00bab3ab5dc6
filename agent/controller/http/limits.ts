import { ApiProblem } from './problem.ts';

/** How much of the controller one caller, and all callers, may hold at once. */
export interface ControllerLimits {
  /** Open connections; a request on a connection past this gets 503 and the connection is closed. */
  connections: number;
  /** Long-polls waiting at once, in all. */
  longPolls: number;
  /** Long-polls waiting at once for one node (a node waits on the lease and on join: two). */
  longPollsPerNode: number;
}

/** Room for a few thousand nodes forming at once (each waits on join while the leader inits). */
export const DEFAULT_LIMITS: ControllerLimits = { connections: 8192, longPolls: 4096, longPollsPerNode: 4 };

const overloaded = (what: string) => new ApiProblem(503, 'overloaded', `${what}; ask again later`);

/** Counts what is held and refuses past the limits with 503 `overloaded`. */
export class LoadGate {
  private readonly limits: ControllerLimits;
  private connections = 0;
  private longPolls = 0;
  private readonly longPollsOf = new Map<string, number>();

  constructor(limits: ControllerLimits) {
    this.limits = limits;
  }

  /** A connection opened; returns its release. */
  connectionOpened(): () => void {
    this.connections += 1;
    return () => {
      this.connections -= 1;
    };
  }

  /** Throws 503 when more connections are open than allowed. */
  checkConnections(): void {
    if (this.connections > this.limits.connections)
      throw overloaded(`the controller has more than ${this.limits.connections} connections open`);
  }

  /** Admits one long-poll of `caller` (cluster and node), or throws 503; returns its release. */
  enterLongPoll(caller: string): () => void {
    const held = this.longPollsOf.get(caller) ?? 0;
    if (held >= this.limits.longPollsPerNode) throw overloaded(`${caller} has ${held} long-polls waiting already`);
    if (this.longPolls >= this.limits.longPolls) throw overloaded(`the controller has ${this.longPolls} long-polls waiting`);
    this.longPolls += 1;
    this.longPollsOf.set(caller, held + 1);
    return () => {
      this.longPolls -= 1;
      const left = (this.longPollsOf.get(caller) ?? 1) - 1;
      if (left === 0) this.longPollsOf.delete(caller);
      else this.longPollsOf.set(caller, left);
    };
  }
}
