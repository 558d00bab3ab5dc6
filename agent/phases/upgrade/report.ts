import { ControllerRequestError } from '../../protocol/errors.ts';
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
    // The controller's own look at the Node may come before the API it asks has caught up, or while it restarts.
    retry: {
      attempts: 10,
      initialDelayMs: 1_000,
      maxDelayMs: 10_000,
      retryable: (error) =>
        error instanceof ControllerRequestError &&
        (error.code === 'cluster-api-unavailable' || (error.code === 'conflict' && /is not Ready on/.test(error.message))),
    },
  };
}
