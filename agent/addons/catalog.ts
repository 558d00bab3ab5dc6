import pins from '../../addons/pins.json' with { type: 'json' };

/**
 * The add-ons this agent version knows, each pinned to the one upstream release the image
 * carries under /opt/pke/addons/NAME/VERSION. The pins (upstream URL, sha256, the Go module
 * that holds the same file) live in the repository's `addons/pins.json`; the image build
 * fetches and checks them (scripts/addons/fetch.ts).
 */

export const CNI_PLUGINS = ['calico', 'flannel'] as const;
export type CniPlugin = (typeof CNI_PLUGINS)[number];
/** A cluster's choice: one of the bundled plugins, or `none` for a site that brings its own CNI. */
export const CNI_CHOICES = [...CNI_PLUGINS, 'none'] as const;

export const ADDON_NAMES = [...CNI_PLUGINS, 'metallb', 'vsphere-cpi', 'vsphere-csi'] as const;
export type AddonName = (typeof ADDON_NAMES)[number];

/** One upstream file of a release, as `addons/pins.json` pins it. */
export interface PinnedFile {
  /** Its name in the bundle: numbered, so that name order is apply order. */
  file: string;
  /** The release's URL; `{version}` and `{minor}` stand for the release's version and minor. */
  url: string;
  /** Where the same file lies in the Go module's tree. */
  path: string;
  sha256: string;
  /** Where the sha256 was computed, said plainly. */
  checksumFrom: string;
}

export interface AddonRelease {
  version: string;
  /** The Go module whose zip holds the files; its version may be `{version}`. */
  module: { path: string; version: string };
  files: PinnedFile[];
}

export const ADDON_RELEASES: Record<AddonName, AddonRelease> = pins.addons;

export const ADDON_VERSIONS = Object.fromEntries(ADDON_NAMES.map((name) => [name, ADDON_RELEASES[name].version])) as Record<
  AddonName,
  string
>;

/** `{version}` and `{minor}` of a URL, path or module version, filled in for a release. */
export function expandPin(template: string, version: string): string {
  const minor = version.split('.').slice(0, 2).join('.');
  return template.replaceAll('{version}', version).replaceAll('{minor}', minor);
}

/** Where the image build puts the bundle (packer/scripts/75-addons.sh). */
export const ADDONS_BUNDLE_DIR = '/opt/pke/addons';
/** Where the addons phase writes the manifests it rendered and applied. */
export const RENDERED_ADDONS_DIR = '/etc/kubernetes/pke/addons';
/** One image reference a line: what an air-gapped site mirrors or pre-pulls. */
export const IMAGES_LIST = 'images.txt';

export function bundleDir(name: AddonName): string {
  return `${ADDONS_BUNDLE_DIR}/${name}/${ADDON_VERSIONS[name]}`;
}
