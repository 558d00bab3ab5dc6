import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { withLockDir } from '../../scripts/ensure-built.ts';
import { cacheDir, run, runOk, sha256, systemCommand } from './support.ts';

const SUITE = 'bookworm';
/** Bump when the cached root file system is made differently. */
const RECIPE = 'minbase-v1';
const STANDARD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface AptSources {
  /** The Debian mirror this machine uses, for debootstrap. */
  mirror: string;
  /** deb822 sources the chroot gets: the machine's own when it has them. */
  deb822: string;
}

/** The mirror and suites this machine's apt uses (the test goes where apt-get goes, nowhere else). */
export function aptSources(): AptSources {
  const dir = '/etc/apt/sources.list.d';
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.sources'))
        .map((f) => path.join(dir, f))
    : [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const stanzas = text.split(/\n\s*\n/).filter((s) => new RegExp(`^Suites:.*\\b${SUITE}\\b`, 'm').test(s) && /^Types:.*\bdeb\b/m.test(s));
    const uri = stanzas.map((s) => /^URIs:\s*(\S+)/m.exec(s)?.[1]).find((u) => u && !u.includes('security'));
    if (uri) return { mirror: uri, deb822: `${stanzas.join('\n\n')}\n` };
  }
  const list = existsSync('/etc/apt/sources.list') ? readFileSync('/etc/apt/sources.list', 'utf8') : '';
  const mirror = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+)\\s+${SUITE}\\s`, 'm').exec(list)?.[1] ?? 'http://deb.debian.org/debian';
  return {
    mirror,
    deb822: `Types: deb\nURIs: ${mirror}\nSuites: ${SUITE} ${SUITE}-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
  };
}

/** Why the chroot tests cannot run here, or undefined. */
export async function chrootMissing(sources: AptSources): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (debootstrap, chroot and mount)';
  for (const [command, pkg] of [
    ['debootstrap', 'debootstrap'],
    ['chroot', 'coreutils'],
    ['mount', 'mount'],
    ['umount', 'mount'],
    ['dpkg-deb', 'dpkg'],
    ['tar', 'tar'],
  ] as const) {
    if (!systemCommand(command)) return `${command} not installed (Debian package ${pkg}; scripts/setup.sh installs it as root)`;
  }
  const url = `${sources.mirror.replace(/\/$/, '')}/dists/${SUITE}/InRelease`;
  try {
    const response = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(15_000) });
    if (!response.ok) return `Debian mirror answered ${response.status} for ${url}`;
  } catch (error) {
    return `Debian mirror not reachable (${url}: ${(error as Error).message})`;
  }
  return undefined;
}

export interface Rootfs {
  tarball: string;
  /** Debian's containerd and runc .debs, fetched with the root file system (the real ones). */
  runtimeDebs: string[];
  built: boolean;
}

/**
 * A debootstrapped Debian (minbase) with the machine's apt sources and fresh package lists,
 * cached as a tarball with Debian's containerd and runc .debs beside it. Made once per
 * mirror/sources/recipe; later runs only extract it.
 */
export async function ensureRootfs(sources: AptSources): Promise<Rootfs> {
  const key = sha256(RECIPE, sources.mirror, sources.deb822);
  const dir = cacheDir('rootfs');
  const tarball = path.join(dir, `${SUITE}-${RECIPE}-${key}.tar.gz`);
  const debsDir = path.join(dir, `${SUITE}-${RECIPE}-${key}-debs`);
  const cached = (): Rootfs | undefined =>
    existsSync(tarball) && existsSync(debsDir)
      ? {
          tarball,
          runtimeDebs: readdirSync(debsDir)
            .filter((f) => f.endsWith('.deb'))
            .map((f) => path.join(debsDir, f)),
          built: false,
        }
      : undefined;

  const hit = cached();
  if (hit) return hit;
  return withLockDir(path.join(dir, '.lock'), async () => {
    const again = cached();
    if (again) return again;
    const work = mkdtempSync(path.join(dir, 'build-'));
    const root = path.join(work, 'root');
    try {
      await runOk('debootstrap', ['--variant=minbase', SUITE, root, sources.mirror], { timeoutMs: 15 * 60_000 });
      rmSync(path.join(root, 'etc/apt/sources.list'), { force: true });
      writeFileSync(path.join(root, 'etc/apt/sources.list.d/debian.sources'), sources.deb822);
      writeFileSync(path.join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
      const inRoot = (script: string) =>
        runOk('chroot', [root, '/usr/bin/env', '-i', `PATH=${STANDARD_PATH}`, 'DEBIAN_FRONTEND=noninteractive', '/bin/sh', '-ec', script], {
          timeoutMs: 10 * 60_000,
        });
      await inRoot('apt-get update -q && mkdir -p /tmp/runtime-debs && cd /tmp/runtime-debs && apt-get download containerd runc');
      const debs = path.join(work, 'debs');
      renameSync(path.join(root, 'tmp/runtime-debs'), debs);
      rmSync(path.join(root, 'etc/resolv.conf'));
      await runOk('tar', ['-C', root, '-czf', `${tarball}.tmp`, '.'], { timeoutMs: 10 * 60_000 });
      renameSync(debs, debsDir);
      renameSync(`${tarball}.tmp`, tarball);
    } finally {
      rmSync(`${tarball}.tmp`, { force: true });
      await removeTree(work);
    }
    return { ...cached()!, built: true };
  });
}

/** Mount points at or below a directory, deepest first (from /proc/self/mountinfo). */
function mountsBelow(dir: string): string[] {
  const decode = (field: string) => field.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mount): mount is string => mount !== undefined)
    .map(decode)
    .filter((mount) => mount === dir || mount.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything below a directory, then removes it without ever crossing into a mount. */
async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (let attempt = 0; attempt < 3; attempt++) {
    const mounts = mountsBelow(dir);
    if (mounts.length === 0) break;
    for (const mount of mounts) {
      const result = await run('umount', [mount]);
      if (result.exitCode !== 0) await run('umount', ['-l', mount]);
    }
  }
  const left = mountsBelow(dir);
  if (left.length > 0) throw new Error(`could not unmount ${left.join(', ')}; not removing ${dir}`);
  await runOk('rm', ['-rf', '--one-file-system', dir]);
}

export interface Chroot {
  dir: string;
  /** Runs a command inside the chroot with a clean environment. */
  exec(args: string[], env?: Record<string, string>, timeoutMs?: number): ReturnType<typeof run>;
  /** The real path of a path inside the chroot. */
  file(nodePath: string): string;
  remove(): Promise<void>;
}

const OWNER_SUFFIX = '.owner-pid';

/** Chroots of test runs that died without cleaning up (their owner process is gone). */
async function sweepStale(): Promise<void> {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith('pke-image-chroot-') || !name.endsWith(OWNER_SUFFIX)) continue;
    const ownerFile = path.join(tmpdir(), name);
    const pid = Number(readFileSync(ownerFile, 'utf8'));
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (error) {
      alive = (error as NodeJS.ErrnoException).code !== 'ESRCH';
    }
    if (alive) continue;
    await removeTree(ownerFile.slice(0, -OWNER_SUFFIX.length));
    rmSync(ownerFile, { force: true });
  }
}

/**
 * A fresh chroot from the cached root file system, with /proc, /sys and /dev mounted, DNS,
 * and a policy-rc.d that keeps package scripts from starting daemons on the test machine.
 * `remove()` unmounts and deletes it; call it in afterAll, whatever happened.
 */
export async function createChroot(rootfs: Rootfs): Promise<Chroot> {
  await sweepStale();
  const dir = mkdtempSync(path.join(tmpdir(), 'pke-image-chroot-'));
  writeFileSync(`${dir}${OWNER_SUFFIX}`, String(process.pid));
  const chroot: Chroot = {
    dir,
    file: (nodePath) => path.join(dir, nodePath),
    exec: (args, env = {}, timeoutMs = 10 * 60_000) =>
      run(
        'chroot',
        [
          dir,
          '/usr/bin/env',
          '-i',
          `PATH=${STANDARD_PATH}`,
          'HOME=/root',
          'LANG=C.UTF-8',
          ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
          ...args,
        ],
        { timeoutMs },
      ),
    remove: async () => {
      await removeTree(dir);
      rmSync(`${dir}${OWNER_SUFFIX}`, { force: true });
    },
  };
  try {
    await runOk('tar', ['-C', dir, '-xzf', rootfs.tarball], { timeoutMs: 5 * 60_000 });
    // A private mount of its own: nothing mounted below propagates to the machine's mounts.
    await runOk('mount', ['--bind', dir, dir]);
    await runOk('mount', ['--make-private', dir]);
    await runOk('mount', ['-t', 'proc', 'proc', path.join(dir, 'proc')]);
    await runOk('mount', ['-t', 'sysfs', 'sysfs', path.join(dir, 'sys')]);
    await runOk('mount', ['--bind', '/dev', path.join(dir, 'dev')]);
    mkdirSync(path.join(dir, 'dev/pts'), { recursive: true });
    await runOk('mount', ['--bind', '/dev/pts', path.join(dir, 'dev/pts')]);
    writeFileSync(path.join(dir, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
    writeFileSync(
      path.join(dir, 'usr/sbin/policy-rc.d'),
      '#!/bin/sh\n# pke-agent image test: no daemons start inside the test chroot\nexit 101\n',
      { mode: 0o755 },
    );
    // The chroot is thrown away after the test: dpkg need not fsync every file it unpacks.
    writeFileSync(path.join(dir, 'etc/dpkg/dpkg.cfg.d/pke-test-unsafe-io'), 'force-unsafe-io\n');
  } catch (error) {
    await chroot.remove();
    throw error;
  }
  return chroot;
}
