import { installAddons, type AddonResult } from '../addons/install.ts';
import { LEADER_ONLY, type Phase } from './phase.ts';

export interface AddonsOptions {
  /** How long each workload's rollout may take (`kubectl rollout status --timeout`). */
  rolloutTimeoutSeconds?: number;
}

export interface AddonsOutput {
  addons: AddonResult[];
}

/**
 * The cluster add-ons, on the leader only, from the bundle baked into the image: the CNI
 * (a node stays NotReady without one, hence before wait-ready), then MetalLB and the vSphere
 * CPI and CSI when configured.
 * `kubectl apply` is idempotent, so `bootstrap --phase addons --redo` is safe.
 */
export function createAddonsPhase(options: AddonsOptions = {}): Phase<AddonsOutput> {
  const rolloutTimeoutSeconds = options.rolloutTimeoutSeconds ?? 300;
  return {
    name: 'addons',
    summary: 'The leader applies the CNI, MetalLB and the vSphere CPI/CSI from the image bundle and waits for their rollout',
    needs: ['kube-init', 'vip'],
    ...LEADER_ONLY,
    run: async ({ config, host, log, controller }) => ({
      addons: await installAddons({ host, log, config, controller, rolloutTimeoutSeconds }),
    }),
  };
}

export const addonsPhase = createAddonsPhase();
