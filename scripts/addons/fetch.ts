/**
 * Fetches the pinned upstream add-on releases, checks each file's sha256, and writes the bundles
 * the image build stages under /opt/pke/addons (packer/scripts/75-addons.sh).
 *
 *   node scripts/addons/fetch.ts --out dist/addons                      from the release URLs
 *   node scripts/addons/fetch.ts --out dist/addons --from-dir DIR        an air-gapped copy (NAME/VERSION/FILE)
 *   node scripts/addons/fetch.ts --out dist/addons --mirror URL          an internal mirror, same layout
 *   node scripts/addons/fetch.ts --out dist/addons --source goproxy      the Go modules that hold the files
 *   node scripts/addons/fetch.ts --cache                                 the tests' cache, through the Go module proxy
 *
 * --pins FILE uses another pin catalog than addons/pins.json; --only NAME (repeatable) fetches
 * some add-ons. Exit 2: bad flags, a bad or missing pin; exit 1: a file could not be fetched or its checksum differs.
 */
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ADDON_NAMES, type AddonName } from '../../agent/addons/catalog.ts';
import { addonsCacheDir, lastFetchErrorFile } from './cache.ts';
import { PINS_FILE, PinsError, readPins } from './pins.ts';
import { MissingPinError, SOURCE_KINDS, type Source } from './sources.ts';
import { stageAddons } from './stage.ts';

function usage(message: string): never {
  console.error(`addons fetch: ${message}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        out: { type: 'string' },
        cache: { type: 'boolean', default: false },
        source: { type: 'string' },
        'from-dir': { type: 'string' },
        mirror: { type: 'string' },
        pins: { type: 'string', default: PINS_FILE },
        only: { type: 'string', multiple: true, default: [] },
      },
      strict: true,
    });
  } catch (error) {
    return usage(error instanceof Error ? error.message : String(error));
  }
})();

const out = values.cache ? addonsCacheDir() : values.out;
if (!out) usage('--out DIR is required (or --cache)');
const kind = values.source ?? (values['from-dir'] ? 'dir' : values.mirror ? 'mirror' : values.cache ? 'goproxy' : 'upstream');
if (!(SOURCE_KINDS as readonly string[]).includes(kind)) usage(`--source ${kind}: expected one of ${SOURCE_KINDS.join(', ')}`);
let source: Source;
if (kind === 'dir') source = { kind, dir: values['from-dir'] ?? usage('--source dir needs --from-dir DIR') };
else if (kind === 'mirror') {
  const baseUrl = values.mirror ?? usage('--source mirror needs --mirror URL');
  if (!/^https?:\/\/[^/\s]+/.test(baseUrl)) usage(`--mirror ${baseUrl}: expected an http:// or https:// URL`);
  source = { kind, baseUrl };
} else source = { kind: kind as 'upstream' | 'goproxy' };
for (const name of values.only)
  if (!(ADDON_NAMES as readonly string[]).includes(name)) usage(`--only ${name}: expected one of ${ADDON_NAMES.join(', ')}`);

let releases: ReturnType<typeof readPins>;
try {
  releases = readPins(values.pins);
} catch (error) {
  if (error instanceof PinsError) usage(error.message);
  throw error;
}

const started = Date.now();
try {
  const staged = await stageAddons({
    out,
    source,
    releases,
    names: values.only.length > 0 ? (values.only as AddonName[]) : ADDON_NAMES,
    log: (line) => console.error(line),
  });
  if (values.cache) rmSync(lastFetchErrorFile(), { force: true });
  const bytes = staged.reduce((sum, s) => sum + s.bytes, 0);
  console.error(
    `addons: ${staged.length} add-ons (${(bytes / 1024).toFixed(0)} KiB) from ${source.kind} into ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  if (values.cache) {
    mkdirSync(addonsCacheDir(), { recursive: true });
    writeFileSync(lastFetchErrorFile(), `${message}\n`);
  }
  console.error(`addons fetch: ${message}`);
  process.exit(error instanceof MissingPinError ? 2 : 1);
}
