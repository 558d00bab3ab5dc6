import type { Phase } from '../phase.ts';
import { upgradeDrainPhase } from './drain.ts';
import type { UpgradeInputs } from './inputs.ts';
import { upgradeKubeadmPhase } from './kubeadm.ts';
import { upgradeKubeletPhase } from './kubelet.ts';
import { upgradePreflightPhase } from './preflight.ts';
import { upgradeReportPhase } from './report.ts';
import { upgradeTurnPhase } from './turn.ts';
import { upgradeUncordonPhase } from './uncordon.ts';
import { upgradeVipOffPhase, upgradeVipOnPhase } from './vip.ts';

/** `pke-agent upgrade`, in order: the runner walks it with the upgrade's own journal. */
export function upgradePhases(inputs: UpgradeInputs): readonly Phase[] {
  return [
    upgradePreflightPhase(inputs),
    upgradeTurnPhase(inputs),
    upgradeDrainPhase(inputs),
    upgradeVipOffPhase(inputs),
    upgradeKubeadmPhase(inputs),
    upgradeKubeletPhase(inputs),
    upgradeVipOnPhase(inputs),
    upgradeUncordonPhase(inputs),
    upgradeReportPhase(inputs),
  ] as Phase[];
}
