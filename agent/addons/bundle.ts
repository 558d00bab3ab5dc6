import { PkeError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { ADDON_VERSIONS, IMAGES_LIST, bundleDir, type AddonName } from './catalog.ts';

export interface AddonBundle {
  name: AddonName;
  version: string;
  dir: string;
  /** Manifest file names in apply order (name order: bundles number them). */
  manifests: string[];
  images: string[];
}

/** What is wrong with an add-on's bundle on this host, or undefined when it is complete. */
export async function bundleProblem(host: Host, name: AddonName): Promise<string | undefined> {
  const dir = bundleDir(name);
  const where = `add-on ${name} ${ADDON_VERSIONS[name]}`;
  if (!(await host.exists(dir)))
    return `${where}: its bundle ${dir} is missing (the image build fetches it: scripts/addons/fetch.ts, then packer/scripts/75-addons.sh)`;
  const files = await host.list(dir);
  if (!files.some(isManifest)) return `${where}: ${dir} holds no manifest (*.yaml)`;
  if (!files.includes(IMAGES_LIST)) return `${where}: ${dir}/${IMAGES_LIST} is missing`;
  return undefined;
}

/** Reads an add-on's bundle from the image; fails naming the add-on, its version and the path when anything is missing. */
export async function readBundle(host: Host, name: AddonName): Promise<AddonBundle> {
  const problem = await bundleProblem(host, name);
  const dir = bundleDir(name);
  if (problem) throw new PkeError(problem, { context: { path: dir } });
  const images = ((await host.readText(`${dir}/${IMAGES_LIST}`)) ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  return { name, version: ADDON_VERSIONS[name], dir, manifests: (await host.list(dir)).filter(isManifest), images };
}

function isManifest(file: string): boolean {
  return file.endsWith('.yaml') || file.endsWith('.yml');
}
