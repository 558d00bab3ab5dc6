import type { Phase } from '../phase.ts';
import type { UpgradeInputs } from './inputs.ts';

const DRAIN_TIMEOUT_SECONDS = 300;

/** The controller cordons this node and evicts its pods through the cluster's API (PodDisruptionBudgets hold). */
export function upgradeDrainPhase({ api }: UpgradeInputs): Phase<{ evicted: string[] }> {
  return {
    name: 'upgrade-drain',
    summary: 'The controller cordons this node and evicts its pods (mirror and DaemonSet pods stay)',
    needs: ['upgrade-turn'],
    run: async ({ log }) => {
      const { evicted } = await api.drain(DRAIN_TIMEOUT_SECONDS);
      log.info('upgrade.drained', { evicted: evicted.length });
      return { evicted };
    },
  };
}
