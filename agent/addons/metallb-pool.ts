import YAML from 'yaml';

const METALLB_NAMESPACE = 'metallb-system';
const METALLB_POOL_NAME = 'pke-default';

/**
 * The layer-2 address pool from the cluster config. Applied after MetalLB's controller is
 * rolled out: its webhook validates these objects.
 */
export function renderMetallbPool(addresses: string[]): string {
  const metadata = { name: METALLB_POOL_NAME, namespace: METALLB_NAMESPACE };
  const pool = { apiVersion: 'metallb.io/v1beta1', kind: 'IPAddressPool', metadata, spec: { addresses } };
  const advertisement = {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata,
    spec: { ipAddressPools: [METALLB_POOL_NAME] },
  };
  return `# Rendered by pke-agent from the cluster config (addons.metallb.addresses).\n${YAML.stringify(pool)}---\n${YAML.stringify(advertisement)}`;
}
