import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ADDON_NAMES, type AddonName, type AddonRelease, IMAGES_LIST } from '../../agent/addons/catalog.ts';
import { parseObjects } from '../../agent/addons/manifest.ts';
import { imagesOf } from '../../agent/addons/render.ts';
import { FetchError, MissingPinError, locationOf, readPinnedFile, type Source, sha256, upstreamUrl } from './sources.ts';

/** What the build records beside each bundle: where every file came from and what it was checked against. */
export const SOURCES_RECORD = 'sources.json';
/** The pinned sums in sha256sum's format, which packer/scripts/75-addons.sh checks again in the image. */
export const SUMS_FILE = 'SHA256SUMS';

export interface StageOptions {
  /** Where the bundles go: OUT/NAME/VERSION/, the tree packer/scripts/75-addons.sh stages under /opt/pke/addons. */
  out: string;
  source: Source;
  releases: Record<AddonName, AddonRelease>;
  names?: readonly AddonName[];
  log?: (line: string) => void;
}

export interface StagedAddon {
  name: AddonName;
  version: string;
  files: number;
  bytes: number;
  /** Files already in OUT with the pinned sha256, not fetched again. */
  reused: number;
  ms: number;
}

/**
 * Fetches every pinned file of the add-ons, checks each against its pinned sha256, and writes the
 * bundles (with images.txt, read from the manifests, and sources.json). Nothing is written to OUT
 * unless every add-on passed: a failure leaves OUT as it was.
 */
export async function stageAddons(options: StageOptions): Promise<StagedAddon[]> {
  const names = options.names ?? ADDON_NAMES;
  await mkdir(options.out, { recursive: true });
  const staging = await mkdtemp(path.join(options.out, '.staging-'));
  try {
    // Every add-on settles before the staging directory goes, failed or not.
    const settled = await Promise.allSettled(names.map((name) => stageOne(options, name, staging)));
    const failure = settled.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    const staged = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    for (const name of names) {
      await rm(path.join(options.out, name), { recursive: true, force: true });
      await rename(path.join(staging, name), path.join(options.out, name));
    }
    return staged;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function stageOne(options: StageOptions, name: AddonName, staging: string): Promise<StagedAddon> {
  const started = Date.now();
  const release = options.releases[name];
  const dir = path.join(staging, name, release.version);
  await mkdir(dir, { recursive: true });
  const records: Record<string, string>[] = [];
  const objects = [];
  let bytes = 0;
  let reused = 0;
  for (const file of release.files) {
    const where = locationOf(options.source, name, release, file);
    if (!/^[0-9a-f]{64}$/.test(file.sha256))
      throw new MissingPinError(
        `add-on ${name} ${release.version}: ${file.file}: no sha256 pinned for ${upstreamUrl(release, file)} in addons/pins.json (got ${JSON.stringify(file.sha256 ?? null)}); pin it with scripts/addons/refresh-pins.ts ${name} ${release.version}`,
      );
    const existing = path.join(options.out, name, release.version, file.file);
    let content = existsSync(existing) ? await readFile(existing) : undefined;
    if (content && sha256(content) === file.sha256) reused += 1;
    else {
      content = Buffer.from(await readPinnedFile(options.source, name, release, file));
      const actual = sha256(content);
      if (actual !== file.sha256) {
        const upstream = options.source.kind === 'upstream' ? '' : ` (upstream ${upstreamUrl(release, file)})`;
        throw new FetchError(
          `add-on ${name} ${release.version}: ${file.file} from ${where}${upstream}: sha256 mismatch: pinned ${file.sha256}, got ${actual}`,
        );
      }
    }
    bytes += content.length;
    await writeFile(path.join(dir, file.file), content, { mode: 0o644 });
    objects.push(...parseObjects(content.toString('utf8'), where));
    records.push({
      file: file.file,
      url: upstreamUrl(release, file),
      fetchedFrom: where,
      sha256: file.sha256,
      checksumFrom: file.checksumFrom,
    });
  }
  const images = imagesOf(objects);
  await writeFile(
    path.join(dir, IMAGES_LIST),
    `# Images of ${name} ${release.version} as its upstream manifests name them (what an air-gapped site mirrors).\n${images.join('\n')}\n`,
  );
  await writeFile(path.join(dir, SUMS_FILE), release.files.map((file) => `${file.sha256}  ${file.file}\n`).join(''));
  await writeFile(path.join(dir, SOURCES_RECORD), `${JSON.stringify({ name, version: release.version, files: records }, null, 2)}\n`);
  const ms = Date.now() - started;
  options.log?.(
    `addons: ${name} ${release.version}: ${release.files.length} file(s), ${(bytes / 1024).toFixed(0)} KiB, ${images.length} images, sha256 verified${reused ? ` (${reused} already there)` : ''} in ${(ms / 1000).toFixed(1)} s`,
  );
  return { name, version: release.version, files: release.files.length, bytes, reused, ms };
}
