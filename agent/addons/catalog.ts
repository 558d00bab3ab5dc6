/**
 * The add-ons this agent version knows, each pinned to the one version whose bundle the image
 * carries under /opt/pke/addons/NAME/VERSION (sources in the repository's `addons/`).
 */

export const CNI_PLUGINS = ['calico', 'cilium', 'flannel'] as const;
export type CniPlugin = (typeof CNI_PLUGINS)[number];
/** A cluster's choice: one of the bundled plugins, or `none` for a site that brings its own CNI. */
export const CNI_CHOICES = [...CNI_PLUGINS, 'none'] as const;

export const ADDON_VERSIONS = {
  calico: 'v3.28.2',
  cilium: 'v1.16.3',
  flannel: 'v0.25.7',
  metallb: 'v0.14.8',
  'vsphere-cpi': 'v1.31.0',
  'vsphere-csi': 'v3.3.1',
} as const satisfies Record<CniPlugin | 'metallb' | 'vsphere-cpi' | 'vsphere-csi', string>;
export type AddonName = keyof typeof ADDON_VERSIONS;

export const ADDON_NAMES = Object.keys(ADDON_VERSIONS) as AddonName[];

/** Where the image build puts the bundle (packer/scripts/75-addons.sh). */
export const ADDONS_BUNDLE_DIR = '/opt/pke/addons';
/** Where the addons phase writes the manifests it rendered and applied. */
export const RENDERED_ADDONS_DIR = '/etc/kubernetes/pke/addons';
/** One image reference a line: what an air-gapped site mirrors or pre-pulls. */
export const IMAGES_LIST = 'images.txt';

export function bundleDir(name: AddonName): string {
  return `${ADDONS_BUNDLE_DIR}/${name}/${ADDON_VERSIONS[name]}`;
}
