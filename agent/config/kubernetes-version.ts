import { z } from 'zod';
import { InputError } from '../core/errors.ts';

/** The oldest Kubernetes minor this agent bootstraps: kubeadm's v1beta3 config API begins there. */
const OLDEST_KUBERNETES_MINOR = 22;

const KUBERNETES_VERSION = /^v?1\.(\d+)\.\d+$/;

/** The minor version of a Kubernetes version such as `1.31.2` or `v1.30.4`. */
export function kubernetesMinor(version: string): number {
  const match = KUBERNETES_VERSION.exec(version);
  if (!match) throw new InputError(`not a Kubernetes version: ${version}`);
  return Number(match[1]);
}

/** The minor version, refusing one older than this agent supports. */
export function supportedKubernetesMinor(version: string): number {
  const minor = kubernetesMinor(version);
  if (minor < OLDEST_KUBERNETES_MINOR)
    throw new InputError(`Kubernetes ${version} is older than 1.${OLDEST_KUBERNETES_MINOR}, which this agent does not support`);
  return minor;
}

export const kubernetesVersion = z
  .string()
  .regex(KUBERNETES_VERSION, 'expected a Kubernetes version such as 1.31.2')
  // Run even when the pattern failed (zod goes on to report every problem): a non-version passes here.
  .refine(
    (v) => !KUBERNETES_VERSION.test(v) || kubernetesMinor(v) >= OLDEST_KUBERNETES_MINOR,
    `Kubernetes versions before 1.${OLDEST_KUBERNETES_MINOR} are not supported`,
  );
