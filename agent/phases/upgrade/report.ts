import type { Phase } from '../phase.ts';
import type { UpgradeInputs } from './inputs.ts';

/** Tells the controller this node is done; it checks the Node in the cluster's API and hands the slot on. */
export function upgradeReportPhase({ to, api }: UpgradeInputs): Phase<{ reportedAt: string }> {
  return {
    name: 'upgrade-report',
    summary: 'Reports the node upgraded; the controller checks it is Ready on the new version and gives the next node its turn',
    needs: ['upgrade-uncordon'],
    run: async () => {
      await api.upgraded(to);
      return { reportedAt: new Date().toISOString() };
    },
  };
}
