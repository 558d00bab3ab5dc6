import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { LeaseHolder } from '../phases/phase.ts';
import type { JoinGrant } from '../protocol/api.ts';
import { ControllerRequestError } from '../protocol/errors.ts';
import type { NodeApi } from '../protocol/node-api.ts';

/** For a run that never takes part in the election (`vip-sync`, tests of single phases): holds nothing. */
export const NO_LEASE: LeaseHolder = { hold: () => {}, initGrant: () => undefined, release: () => {} };

/**
 * Renews the leader lease at a third of its TTL while this node holds it. A renewal the
 * controller refuses (the lease expired and someone else holds it now: fenced) aborts the run,
 * since every step after that would act for a leader this node no longer is.
 */
export class LeaseKeeper implements LeaseHolder {
  private timer: NodeJS.Timeout | undefined;
  private epoch: number | undefined;
  private init: JoinGrant | undefined;
  private readonly api: Pick<NodeApi, 'claimLeader'>;
  private readonly log: Logger;
  private readonly onLost: (reason: string) => void;

  constructor(api: Pick<NodeApi, 'claimLeader'>, log: Logger, onLost: (reason: string) => void) {
    this.api = api;
    this.log = log;
    this.onLost = onLost;
  }

  hold(epoch: number, ttlSeconds: number, init?: JoinGrant): void {
    this.release();
    this.epoch = epoch;
    this.init = init;
    const interval = Math.max(250, (ttlSeconds * 1000) / 3);
    this.timer = setInterval(() => void this.renew(), interval);
    this.timer.unref();
  }

  initGrant(epoch: number): JoinGrant | undefined {
    return this.epoch === epoch ? this.init : undefined;
  }

  release(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.epoch = undefined;
    this.init = undefined;
  }

  /** One renewal now; false when the controller refused it. */
  async renew(): Promise<boolean> {
    const epoch = this.epoch;
    if (epoch === undefined) return false;
    try {
      const answer = await this.api.claimLeader({ epoch });
      if (answer.granted) return true;
      this.lost(`the controller did not renew lease epoch ${epoch} (holder ${answer.holder ?? 'none'}, epoch ${answer.epoch})`);
      return false;
    } catch (error) {
      const message = errorMessage(error);
      if (error instanceof ControllerRequestError && error.code === 'fenced') {
        this.lost(`lease epoch ${epoch} was fenced: ${message}`);
        return false;
      }
      // The controller being briefly unreachable is not losing the lease; the next renewal retries.
      this.log.warn('lease.renew-failed', { epoch, error: message });
      return true;
    }
  }

  private lost(reason: string): void {
    this.release();
    this.log.error('lease.lost', { reason });
    this.onLost(reason);
  }
}
