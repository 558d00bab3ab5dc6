import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { ADDON_NAMES, ADDON_RELEASES } from '../../agent/addons/catalog.ts';
import { sha256 } from './sources.ts';

/**
 * The upstream add-on bundles the tests render and validate, fetched through the Go module proxy
 * by `scripts/setup.sh` (`node scripts/addons/fetch.ts --cache`): outside the clone, like the
 * real Kubernetes binaries, so every clone and CI run on a machine reuses them.
 */
export function addonsCacheDir(): string {
  if (process.env.PKE_ADDONS_CACHE) return path.resolve(process.env.PKE_ADDONS_CACHE);
  if (process.getuid?.() === 0) return '/var/cache/pke-agent/addons';
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'pke-agent/addons');
}

/** Why the last fetch into the cache failed, one line, for the tests that then skip. */
export function lastFetchErrorFile(): string {
  return path.join(addonsCacheDir(), 'last-fetch-error');
}

export type UpstreamBundles = { available: true; dir: string } | { available: false; reason: string };

/** The cached bundles when every pinned file is there with its pinned sha256, or why not. */
export function upstreamBundles(): UpstreamBundles {
  const dir = addonsCacheDir();
  const missing = ADDON_NAMES.flatMap((name) => {
    const release = ADDON_RELEASES[name];
    return release.files
      .filter((file) => {
        const at = path.join(dir, name, release.version, file.file);
        return !existsSync(at) || sha256(readFileSync(at)) !== file.sha256;
      })
      .map((file) => `${name}/${release.version}/${file.file}`);
  });
  if (missing.length === 0) return { available: true, dir };
  let why = 'run `node scripts/addons/fetch.ts --cache`';
  try {
    why = `the last fetch failed: ${readFileSync(lastFetchErrorFile(), 'utf8').trim()}`;
  } catch {
    // No failure recorded: never fetched.
  }
  return { available: false, reason: `upstream add-on bundles not in ${dir} (${missing.join(', ')}); ${why}` };
}
