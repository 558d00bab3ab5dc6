import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDON_NAMES, ADDON_VERSIONS, type AddonRelease, type AddonName } from '../../agent/addons/catalog.ts';
import { sha256 } from '../../scripts/addons/sources.ts';
import { freePort } from '../../scripts/free-port.ts';

/**
 * scripts/addons/fetch.ts end to end, against a loopback HTTP server this test starts and stops:
 * it stands for the upstream release URLs and for an internal mirror. The files are the trimmed
 * test fixture, pinned by a pins file the test writes.
 */

const REPO = path.resolve(import.meta.dirname, '../..');
const FIXTURE = path.join(REPO, 'test/fixtures/addons-subset');
const scratch = mkdtempSync(path.join(tmpdir(), 'pke-addons-fetch-'));
const fixtureFiles = (name: AddonName) =>
  readdirSync(path.join(FIXTURE, name, ADDON_VERSIONS[name]))
    .filter((f) => f.endsWith('.yaml'))
    .sort();

/** URL path → bytes; `tampered` answers differ from the fixture. */
const served = new Map<string, Buffer>();
const tampered = new Map<string, Buffer>();
const requests: string[] = [];
let server: Server;
let base = '';

function pins(mutate: (name: AddonName, release: AddonRelease) => void = () => {}): string {
  const addons = Object.fromEntries(
    ADDON_NAMES.map((name) => {
      const release: AddonRelease = {
        version: ADDON_VERSIONS[name],
        module: { path: 'example.invalid/not-fetched', version: '{version}' },
        files: fixtureFiles(name).map((file) => ({
          file,
          url: `${base}/upstream/${name}/{version}/${file}`,
          path: file,
          sha256: sha256(readFileSync(path.join(FIXTURE, name, ADDON_VERSIONS[name], file))),
          checksumFrom: 'computed by this test from the fixture',
        })),
      };
      mutate(name, release);
      return [name, release];
    }),
  );
  const file = path.join(scratch, `pins-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ about: 'test pins', addons }));
  return file;
}

function fetchAddons(args: string[]) {
  return execa(process.execPath, [path.join(REPO, 'scripts/addons/fetch.ts'), ...args], { reject: false, timeout: 60_000 });
}

function listedImages(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .sort();
}

/** Every file below a directory with its content, for before/after comparisons. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => {
        const file = path.join(entry.parentPath, entry.name);
        return [path.relative(dir, file), readFileSync(file, 'utf8')];
      }),
  );
}

beforeAll(async () => {
  for (const name of ADDON_NAMES)
    for (const file of fixtureFiles(name))
      served.set(`/upstream/${name}/${ADDON_VERSIONS[name]}/${file}`, readFileSync(path.join(FIXTURE, name, ADDON_VERSIONS[name], file)));
  server = createServer((request, response) => {
    const url = request.url ?? '';
    requests.push(url);
    const body = tampered.get(url) ?? served.get(url);
    response.writeHead(body ? 200 : 404).end(body ?? 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  rmSync(scratch, { recursive: true, force: true });
});

describe('scripts/addons/fetch.ts', () => {
  const out = path.join(scratch, 'out');

  it('fetches every pinned file from its URL, checks its sha256, and writes the bundles with images.txt and SHA256SUMS', async () => {
    const result = await fetchAddons(['--out', out, '--pins', pins()]);
    expect(result.exitCode, result.stderr).toBe(0);
    for (const name of ADDON_NAMES) {
      const dir = path.join(out, name, ADDON_VERSIONS[name]);
      expect(readdirSync(path.join(out, name)), name).toEqual([ADDON_VERSIONS[name]]);
      for (const file of fixtureFiles(name))
        expect(readFileSync(path.join(dir, file)).equals(readFileSync(path.join(FIXTURE, name, ADDON_VERSIONS[name], file))), file).toBe(
          true,
        );
      // images.txt is read from the manifests: the same images the fixture lists by hand.
      expect(listedImages(path.join(dir, 'images.txt')), name).toEqual(
        listedImages(path.join(FIXTURE, name, ADDON_VERSIONS[name], 'images.txt')),
      );
      const sums = await execa('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir, reject: false });
      expect(sums.exitCode, sums.stdout).toBe(0);
      const record = JSON.parse(readFileSync(path.join(dir, 'sources.json'), 'utf8'));
      expect(record.files.map((f: { fetchedFrom: string }) => f.fetchedFrom)).toEqual(
        fixtureFiles(name).map((file) => `${base}/upstream/${name}/${ADDON_VERSIONS[name]}/${file}`),
      );
    }
    expect(readdirSync(out).sort()).toEqual([...ADDON_NAMES].sort());
    expect(result.stderr).toMatch(/addons: 5 add-ons \(\d+ KiB\) from upstream into .* in \d+\.\d s/);
  });

  it('fetches nothing again when the files are there with their pinned sha256', async () => {
    const before = requests.length;
    const result = await fetchAddons(['--out', out, '--pins', pins()]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(requests.length).toBe(before);
    expect(result.stderr).toContain('already there');
  });

  it('takes the same files from an internal mirror or a local directory laid out as bundles', async () => {
    for (const name of ADDON_NAMES)
      for (const file of fixtureFiles(name))
        served.set(`/mirror/${name}/${ADDON_VERSIONS[name]}/${file}`, readFileSync(path.join(out, name, ADDON_VERSIONS[name], file)));
    const fromMirror = path.join(scratch, 'from-mirror');
    const mirrored = await fetchAddons(['--out', fromMirror, '--pins', pins(), '--mirror', `${base}/mirror/`]);
    expect(mirrored.exitCode, mirrored.stderr).toBe(0);
    expect(requests.filter((r) => r.startsWith('/mirror/')).length).toBe(ADDON_NAMES.flatMap(fixtureFiles).length);
    const fromDir = path.join(scratch, 'from-dir');
    const copied = await fetchAddons(['--out', fromDir, '--pins', pins(), '--from-dir', out]);
    expect(copied.exitCode, copied.stderr).toBe(0);
    for (const name of ADDON_NAMES)
      for (const file of fixtureFiles(name)) {
        const original = readFileSync(path.join(out, name, ADDON_VERSIONS[name], file));
        expect(readFileSync(path.join(fromMirror, name, ADDON_VERSIONS[name], file)).equals(original)).toBe(true);
        expect(readFileSync(path.join(fromDir, name, ADDON_VERSIONS[name], file)).equals(original)).toBe(true);
      }
  });

  it('fails on a checksum mismatch naming the add-on, version, URL and both checksums, and leaves the output as it was', async () => {
    const target = path.join(scratch, 'mismatch');
    cpSync(out, target, { recursive: true });
    const version = ADDON_VERSIONS.calico;
    rmSync(path.join(target, 'calico', version, '30-calico-node.yaml'));
    const before = snapshot(target);
    const url = `/upstream/calico/${version}/30-calico-node.yaml`;
    const bad = Buffer.concat([served.get(url)!, Buffer.from('# changed upstream\n')]);
    tampered.set(url, bad);
    try {
      const result = await fetchAddons(['--out', target, '--pins', pins()]);
      expect(result.exitCode).toBe(1);
      const pinned = sha256(served.get(url)!);
      expect(result.stderr.trim().split('\n').at(-1)).toBe(
        `addons fetch: add-on calico ${version}: 30-calico-node.yaml from ${base}${url}: sha256 mismatch: pinned ${pinned}, got ${sha256(bad)}`,
      );
      expect(snapshot(target)).toEqual(before);
      expect(readdirSync(target).sort()).toEqual([...ADDON_NAMES].sort());
    } finally {
      tampered.delete(url);
    }
  });

  it('fails when a source cannot be reached, naming the add-on, version, URL and the pinned checksum', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const file = pins((name, release) => {
      if (name === 'metallb') for (const f of release.files) f.url = `${closed}/metallb/${f.file}`;
    });
    const result = await fetchAddons(['--out', path.join(scratch, 'unreachable'), '--pins', file, '--only', 'metallb']);
    expect(result.exitCode).toBe(1);
    const first = fixtureFiles('metallb')[0]!;
    const pinned = sha256(readFileSync(path.join(FIXTURE, 'metallb', ADDON_VERSIONS.metallb, first)));
    expect(result.stderr).toContain(`add-on metallb ${ADDON_VERSIONS.metallb}: ${first}: could not fetch ${closed}/metallb/${first}: `);
    expect(result.stderr).toContain(`(pinned sha256 ${pinned}, got none)`);
    expect(existsSync(path.join(scratch, 'unreachable', 'metallb'))).toBe(false);
  });

  it('refuses a missing pin (exit 2) naming the add-on, version and URL, before fetching it', async () => {
    const file = pins((name, release) => {
      if (name === 'flannel') release.files[0]!.sha256 = '';
    });
    const before = requests.length;
    const result = await fetchAddons(['--out', path.join(scratch, 'unpinned'), '--pins', file, '--only', 'flannel']);
    expect(result.exitCode).toBe(2);
    const first = fixtureFiles('flannel')[0]!;
    expect(result.stderr).toContain(
      `add-on flannel ${ADDON_VERSIONS.flannel}: ${first}: no sha256 pinned for ${base}/upstream/flannel/${ADDON_VERSIONS.flannel}/${first} in addons/pins.json`,
    );
    expect(requests.length).toBe(before);
  });

  it('refuses bad flags and a bad pins file with one line and exit 2', async () => {
    const source = await fetchAddons(['--out', out, '--source', 'ftp']);
    expect([source.exitCode, source.stderr.trim()]).toEqual([
      2,
      'addons fetch: --source ftp: expected one of upstream, dir, mirror, goproxy',
    ]);
    const broken = path.join(scratch, 'broken-pins.json');
    writeFileSync(broken, JSON.stringify({ about: 'x', addons: { calico: { version: '3.28' } } }));
    const result = await fetchAddons(['--out', out, '--pins', broken]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toMatch(
      new RegExp(`^addons fetch: ${broken}: addons\\.calico\\.version: expected a release version such as v1\\.31\\.0$`),
    );
  });

  it('refresh-pins.ts pins a new release from its URLs, and fetch.ts then takes exactly that release', async () => {
    const file = pins();
    const next = 'v0.99.0';
    const served099 = Buffer.from(
      readFileSync(path.join(FIXTURE, 'flannel', ADDON_VERSIONS.flannel, '10-kube-flannel.yaml'), 'utf8').replaceAll(
        ADDON_VERSIONS.flannel,
        next,
      ),
    );
    served.set(`/upstream/flannel/${next}/10-kube-flannel.yaml`, served099);
    const refreshed = await execa(process.execPath, [path.join(REPO, 'scripts/addons/refresh-pins.ts'), 'flannel', next, '--pins', file], {
      reject: false,
    });
    expect(refreshed.exitCode, refreshed.stderr).toBe(0);
    const pinned = JSON.parse(readFileSync(file, 'utf8')).addons.flannel as AddonRelease;
    expect(pinned.version).toBe(next);
    expect(pinned.files[0]).toMatchObject({ sha256: sha256(served099) });
    expect(pinned.files[0]!.checksumFrom).toContain(`${base}/upstream/flannel/${next}/10-kube-flannel.yaml`);
    // The agent knows one version per add-on: fetch.ts stages what the pins say, under their version.
    const target = path.join(scratch, 'refreshed');
    const fetched = await fetchAddons(['--out', target, '--pins', file, '--only', 'flannel']);
    expect(fetched.exitCode, fetched.stderr).toBe(0);
    expect(readFileSync(path.join(target, 'flannel', next, '10-kube-flannel.yaml')).equals(served099)).toBe(true);
    expect(listedImages(path.join(target, 'flannel', next, 'images.txt'))).toContain(`docker.io/flannel/flannel:${next}`);
  });
});
