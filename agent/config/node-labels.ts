import { z } from 'zod';

/** Node labels and taints as Kubernetes and the kubelet accept them. */

/** A qualified name with an optional DNS-subdomain prefix: `example.com/gpu`, `team`. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Labels under kubernetes.io or k8s.io that the kubelet may set on its own Node (NodeRestriction). */
const KUBELET_LABELS = new Set([
  'kubernetes.io/hostname',
  'kubernetes.io/os',
  'kubernetes.io/arch',
  'beta.kubernetes.io/os',
  'beta.kubernetes.io/arch',
  'beta.kubernetes.io/instance-type',
  'node.kubernetes.io/instance-type',
  'topology.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'failure-domain.beta.kubernetes.io/zone',
  'failure-domain.beta.kubernetes.io/region',
]);
const KUBELET_NAMESPACES = ['kubelet.kubernetes.io', 'node.kubernetes.io'];
const RESTRICTED_NAMESPACES = ['kubernetes.io', 'k8s.io'];

/**
 * The kubelet refuses to start when `--node-labels` holds a kubernetes.io or k8s.io label it may
 * not set itself, so such a label is refused with the config, before anything is written.
 */
function kubeletMaySet(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash < 0) return true;
  const prefix = key.slice(0, slash);
  const within = (namespaces: string[]) => namespaces.some((ns) => prefix === ns || prefix.endsWith(`.${ns}`));
  return !within(RESTRICTED_NAMESPACES) || KUBELET_LABELS.has(key) || within(KUBELET_NAMESPACES);
}

export const nodeLabels = z
  .record(
    z
      .string()
      .regex(LABEL_KEY, 'expected a label key')
      .refine(
        kubeletMaySet,
        'the kubelet may not set labels under kubernetes.io or k8s.io itself (except kubelet.kubernetes.io/, node.kubernetes.io/ and the well-known topology labels); set it through the API after the node joined',
      ),
    z.string().regex(LABEL_VALUE, 'expected a label value'),
  )
  .default({});

export const taint = z.strictObject({
  key: z.string().regex(LABEL_KEY, 'expected a taint key'),
  value: z.string().regex(LABEL_VALUE, 'expected a taint value').optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
});
export type Taint = z.infer<typeof taint>;
