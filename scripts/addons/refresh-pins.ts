/**
 * Pins an add-on release: fetches its files for VERSION from their upstream URLs (or through the
 * Go module proxy), computes their sha256, and writes version, sums and where each sum was
 * computed into addons/pins.json. Review the diff, then run fetch.ts and the tests.
 *
 *   node scripts/addons/refresh-pins.ts NAME VERSION                        from the release URLs
 *   node scripts/addons/refresh-pins.ts NAME VERSION --source goproxy      from the Go module (tags that are module versions)
 *       [--module-version V]   the Go module version holding the release, when its tag is not one (Calico)
 *       [--pins FILE]          another pin catalog than addons/pins.json
 *
 * Exit 2: bad arguments; exit 1: a file could not be fetched.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ADDON_NAMES, type AddonName, type AddonRelease, expandPin } from '../../agent/addons/catalog.ts';
import { PINS_FILE, PinsError, readPins } from './pins.ts';
import { moduleRef, readPinnedFile, type Source, sha256, upstreamUrl } from './sources.ts';

function usage(message: string): never {
  console.error(`addons refresh-pins: ${message}`);
  process.exit(2);
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      options: {
        source: { type: 'string', default: 'upstream' },
        'module-version': { type: 'string' },
        pins: { type: 'string', default: PINS_FILE },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
})();

const [name, version] = positionals;
if (positionals.length !== 2 || !name || !version) usage('expected NAME VERSION, e.g. flannel v0.26.0');
if (!(ADDON_NAMES as readonly string[]).includes(name)) usage(`${name}: expected one of ${ADDON_NAMES.join(', ')}`);
if (!/^v\d+\.\d+\.\d+$/.test(version)) usage(`${version}: expected a release version such as v1.31.0`);
if (values.source !== 'upstream' && values.source !== 'goproxy') usage(`--source ${values.source}: expected upstream or goproxy`);
const source: Source = { kind: values.source };

try {
  readPins(values.pins);
} catch (error) {
  if (error instanceof PinsError) usage(error.message);
  throw error;
}
const document = JSON.parse(readFileSync(values.pins, 'utf8')) as { addons: Record<AddonName, AddonRelease> };
const current = document.addons[name as AddonName];
const release: AddonRelease = {
  version,
  // A module version that is not the tag (Calico's branch commit) stays while the release does.
  module: {
    path: current.module.path,
    version: values['module-version'] ?? (version === current.version ? current.module.version : '{version}'),
  },
  files: current.files.map((file) => ({ ...file })),
};

const today = new Date().toISOString().slice(0, 10);
try {
  for (const file of release.files) {
    const bytes = await readPinnedFile(source, name as AddonName, release, file);
    file.sha256 = sha256(bytes);
    file.checksumFrom =
      source.kind === 'upstream'
        ? `${upstreamUrl(release, file)}, fetched by scripts/addons/refresh-pins.ts on ${today}.`
        : `${expandPin(file.path, version)} in the Go module zip of ${moduleRef(release)}, fetched by scripts/addons/refresh-pins.ts on ${today}; the URL itself was not fetched.`;
    console.error(`addons: ${name} ${version}: ${file.file}: sha256 ${file.sha256} (${bytes.length} bytes)`);
  }
} catch (error) {
  console.error(`addons refresh-pins: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
document.addons[name as AddonName] = release;
writeFileSync(values.pins, `${JSON.stringify(document, null, 2)}\n`);
console.error(`addons: pinned ${name} ${version} in ${values.pins}; check the diff, then run scripts/addons/fetch.ts and the add-on tests`);
