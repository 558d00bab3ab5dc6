import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { type AddonName, type AddonRelease, type PinnedFile, expandPin } from '../../agent/addons/catalog.ts';

/**
 * Where the image build gets an add-on's upstream files from. Every source yields the same bytes,
 * checked against the same pinned sha256:
 * - `upstream`: each file's pinned release URL over HTTPS (a build machine with network);
 * - `dir`: a local directory laid out as a bundle (`NAME/VERSION/FILE`, what fetch.ts writes),
 *   copied in by hand at an air-gapped site;
 * - `mirror`: an internal HTTP(S) server holding the same layout under a base URL;
 * - `goproxy`: the Go module that holds the file, downloaded by `go mod download` through the
 *   Go module proxy `go env GOPROXY` names (the file at its path in the module's tree).
 */
export type Source = { kind: 'upstream' } | { kind: 'dir'; dir: string } | { kind: 'mirror'; baseUrl: string } | { kind: 'goproxy' };

export const SOURCE_KINDS = ['upstream', 'dir', 'mirror', 'goproxy'] as const;

/** A failure that names the add-on, its version and what was being fetched: one line, exit 1. */
export class FetchError extends Error {}

/** A file of addons/pins.json without its sha256: bad input, exit 2. */
export class MissingPinError extends FetchError {}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function upstreamUrl(release: AddonRelease, file: PinnedFile): string {
  return expandPin(file.url, release.version);
}

export function moduleRef(release: AddonRelease): string {
  return `${release.module.path}@${expandPin(release.module.version, release.version)}`;
}

/** Where a file is read from with this source, as said in logs and errors. */
export function locationOf(source: Source, name: AddonName, release: AddonRelease, file: PinnedFile): string {
  switch (source.kind) {
    case 'upstream':
      return upstreamUrl(release, file);
    case 'dir':
      return path.join(source.dir, name, release.version, file.file);
    case 'mirror':
      return `${source.baseUrl.replace(/\/+$/, '')}/${name}/${release.version}/${file.file}`;
    case 'goproxy':
      return `${moduleRef(release)} ${expandPin(file.path, release.version)} (Go module proxy)`;
  }
}

const HTTP_TIMEOUT_MS = 120_000;

/** The bytes of one pinned file from a source; a FetchError names the add-on, version, location and the pinned sha256. */
export async function readPinnedFile(source: Source, name: AddonName, release: AddonRelease, file: PinnedFile): Promise<Uint8Array> {
  const where = locationOf(source, name, release, file);
  const failed = (why: string) =>
    new FetchError(
      `add-on ${name} ${release.version}: ${file.file}: could not fetch ${where}: ${why} (pinned sha256 ${file.sha256 || 'none'}, got none)`,
    );
  try {
    switch (source.kind) {
      case 'upstream':
      case 'mirror': {
        const response = await fetch(where, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), redirect: 'follow' });
        if (!response.ok) throw failed(`HTTP ${response.status} ${response.statusText}`);
        return new Uint8Array(await response.arrayBuffer());
      }
      case 'dir':
        return await readFile(where);
      case 'goproxy': {
        const dir = await moduleDir(release);
        return await readFile(path.join(dir, expandPin(file.path, release.version)));
      }
    }
  } catch (error) {
    if (error instanceof FetchError) throw error;
    throw failed(describe(error));
  }
}

const moduleDirs = new Map<string, Promise<string>>();

/** The module's tree in Go's module cache (outside the clone), downloaded once per run. */
function moduleDir(release: AddonRelease): Promise<string> {
  const ref = moduleRef(release);
  let dir = moduleDirs.get(ref);
  if (!dir) {
    dir = downloadModule(ref);
    moduleDirs.set(ref, dir);
  }
  return dir;
}

async function downloadModule(ref: string): Promise<string> {
  const result = await execa('go', ['mod', 'download', '-json', ref], {
    cwd: tmpdir(),
    env: { GOFLAGS: '-mod=mod' },
    reject: false,
    timeout: 600_000,
  });
  let answer: { Dir?: string; Error?: string } = {};
  try {
    answer = JSON.parse(result.stdout) as typeof answer;
  } catch {
    // Not JSON: go failed before it answered; its stderr says why.
  }
  if (result.exitCode !== 0 || !answer.Dir)
    throw new Error(`go mod download -json ${ref} exited ${result.exitCode ?? 'on a signal'}: ${answer.Error ?? tail(result.stderr)}`);
  return answer.Dir;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}
