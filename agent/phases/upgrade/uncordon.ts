import type { Phase } from '../phase.ts';
import type { UpgradeInputs } from './inputs.ts';

export function upgradeUncordonPhase({ api }: UpgradeInputs): Phase {
  return {
    name: 'upgrade-uncordon',
    summary: 'The controller makes this node schedulable again',
    needs: ['upgrade-vip-on'],
    run: async () => {
      await api.uncordon();
    },
  };
}
