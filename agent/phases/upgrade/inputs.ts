import { PkeError } from '../../core/errors.ts';
import type { PhaseOutputs } from '../../journal/phase-outputs.ts';
import type { UpgradeApi } from '../../protocol/upgrade-client.ts';

/** What every phase of one upgrade run shares: the version it upgrades to and the controller's upgrade calls. */
export interface UpgradeInputs {
  to: string;
  api: UpgradeApi;
}

/** What upgrade-preflight found, for the later phases. */
export interface UpgradePreflightOutput {
  nodeName: string;
  /** The version the node ran when this upgrade began on it. */
  from: string;
  /** Where the node's kubeadm, kubelet and kubectl are installed (found on PATH): what the kubelet unit runs. */
  installedDir: string;
  imagesImported: number;
}

export interface UpgradeTurnOutput {
  mode: 'apply' | 'node';
  grantedAt: string;
}

export function preflightOutput(outputs: PhaseOutputs, neededBy: string): UpgradePreflightOutput {
  const output = outputs['upgrade-preflight'] as UpgradePreflightOutput | undefined;
  if (!output) throw new PkeError(`${neededBy} needs the upgrade-preflight output`);
  return output;
}

export function turnOutput(outputs: PhaseOutputs, neededBy: string): UpgradeTurnOutput {
  const output = outputs['upgrade-turn'] as UpgradeTurnOutput | undefined;
  if (!output) throw new PkeError(`${neededBy} needs the upgrade-turn output`);
  return output;
}
