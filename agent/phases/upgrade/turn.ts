import { ControllerRequestError } from '../../protocol/errors.ts';
import type { Phase } from '../phase.ts';
import type { UpgradeInputs, UpgradeTurnOutput } from './inputs.ts';

/** The long-poll's wait per request; the phase asks again until its turn comes. */
const WAIT_SECONDS = 60;

/**
 * Waits for this node's turn: the controller hands out one upgrade slot at a time, in its order
 * (the first control-plane node, the others, then the workers), and the next node only once the
 * holder is Ready on the new version. A rerun of the holder gets its slot back.
 */
export function upgradeTurnPhase({ to, api }: UpgradeInputs): Phase<UpgradeTurnOutput> {
  return {
    name: 'upgrade-turn',
    summary: 'Waits for the upgrade slot: one node at a time, control plane first',
    needs: ['upgrade-preflight'],
    run: async ({ log, signal }) => {
      for (;;) {
        signal.throwIfAborted();
        try {
          const grant = await api.slot(to, WAIT_SECONDS);
          log.info('upgrade.turn', { mode: grant.mode });
          return { mode: grant.mode, grantedAt: grant.grantedAt };
        } catch (error) {
          if (!(error instanceof ControllerRequestError && error.code === 'slot-busy')) throw error;
          log.info('upgrade.waiting', { reason: error.message });
        }
      }
    },
  };
}
