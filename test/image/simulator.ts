import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { withLockDir } from '../../scripts/ensure-built.ts';
import { REPO } from '../helpers/cli.ts';
import { cacheDir, findExecutable, run, runOk, sha256 } from './support.ts';

/** Debian's golang-1.19-go and golang-github-vmware-govmomi-dev; the simulator is built in GOPATH mode. */
export const GO = '/usr/lib/go-1.19/bin/go';
export const DEBIAN_GOPATH = '/usr/share/gocode';
const SOURCE = path.join(REPO, 'test/image/vcsim/vcenter-simulator.go');

/** Why the simulator cannot be built here, or undefined when it can. */
export function simulatorMissing(): string | undefined {
  if (!findExecutable([GO])) return `${GO} not found (Debian package golang-1.19-go; scripts/setup.sh installs it as root)`;
  if (!existsSync(path.join(DEBIAN_GOPATH, 'src/github.com/vmware/govmomi/simulator'))) {
    return `govmomi sources not found under ${DEBIAN_GOPATH} (Debian package golang-github-vmware-govmomi-dev)`;
  }
  return undefined;
}

/**
 * The simulator binary, built once per source/toolchain/govmomi version and cached under
 * the cache directory; a rerun finds it there and does not rebuild.
 */
export async function simulatorBinary(): Promise<{ path: string; built: boolean }> {
  const [goVersion, govmomi] = await Promise.all([
    runOk(GO, ['version']),
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format field
    run('dpkg-query', ['-W', '-f=${Version}', 'golang-github-vmware-govmomi-dev']),
  ]);
  const key = sha256(readFileSync(SOURCE), goVersion.stdout, govmomi.stdout);
  const dir = cacheDir('vcenter-simulator');
  const binary = path.join(dir, `pke-vcenter-simulator-${key}`);
  if (existsSync(binary)) return { path: binary, built: false };

  return withLockDir(path.join(dir, '.lock'), async () => {
    if (existsSync(binary)) return { path: binary, built: false };
    const gopath = path.join(dir, `gopath-${process.pid}`);
    const pkg = path.join(gopath, 'src/pke-vcenter-simulator');
    mkdirSync(pkg, { recursive: true });
    try {
      copyFileSync(SOURCE, path.join(pkg, 'main.go'));
      await runOk(GO, ['build', '-o', `${binary}.tmp`, '.'], {
        cwd: pkg,
        timeoutMs: 10 * 60_000,
        env: {
          ...process.env,
          GO111MODULE: 'off',
          GOPATH: `${gopath}:${DEBIAN_GOPATH}`,
          GOCACHE: cacheDir('go-build'),
          GOFLAGS: '',
          CGO_ENABLED: '0',
        },
      });
      renameSync(`${binary}.tmp`, binary);
    } finally {
      rmSync(gopath, { recursive: true, force: true });
      rmSync(`${binary}.tmp`, { force: true });
    }
    return { path: binary, built: true };
  });
}

export interface Simulator {
  /** https://user:pass@127.0.0.1:PORT/sdk */
  url: string;
  /** 127.0.0.1:PORT, as Packer's vcenter_server wants it */
  server: string;
  username: string;
  password: string;
  binary: string;
  pid: number;
  stop(): Promise<void>;
}

export interface SimulatorOptions {
  /** HOST:PORT (default 127.0.0.1 and a free port). */
  listen?: string;
  /** The only user that logs in (default: any non-empty user and password). */
  username?: string;
  password?: string;
  /** PEM files of the serving certificate (default: the simulator's built-in one, a key too weak for OpenSSL's defaults). */
  certFile?: string;
  keyFile?: string;
  /** Run it through this command prefix, e.g. `ip netns exec NS`. */
  prefix?: string[];
}

/** Starts `pke-vcenter-simulator serve` and waits for the line that says where it listens. */
export async function startSimulator(binary: string, options: SimulatorOptions = {}): Promise<Simulator> {
  const args = ['serve'];
  if (options.listen) args.push('-listen', options.listen);
  if (options.username) args.push('-username', options.username, '-password', options.password ?? '');
  if (options.certFile) args.push('-cert', options.certFile, '-key', options.keyFile ?? '');
  const [command, ...prefixArgs] = [...(options.prefix ?? []), binary, ...args];
  const child = spawn(command!, prefixArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };

  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`simulator did not start within 30s: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout }).once('line', (first) => {
      clearTimeout(timer);
      resolve(first);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`simulator exited ${code} before listening: ${stderr}`));
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  const info = JSON.parse(line) as { url: string; server: string; username: string; password: string };
  return { ...info, binary, pid: child.pid ?? -1, stop };
}

export interface VmReport {
  name: string;
  template: boolean;
  powerState: string;
  numCPU: number;
  memoryMB: number;
  guestId: string;
  diskKB: number[];
  networks: string[];
  extraConfig: Record<string, string>;
}

/** Reads a VM back from the simulator's API (not from Packer's output). */
export async function inspectVm(sim: Simulator, inventoryPath: string): Promise<VmReport> {
  const result = await runOk(sim.binary, ['inspect', sim.url, inventoryPath], { timeoutMs: 30_000 });
  return JSON.parse(result.stdout) as VmReport;
}
