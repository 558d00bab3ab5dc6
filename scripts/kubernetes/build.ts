#!/usr/bin/env node
/**
 * Builds the real Kubernetes binaries from their Go modules, pinned in releases.ts, into a cache
 * outside the clone (releases.ts says where). k8s.io/kubernetes cannot be `go install`ed: its
 * go.mod replaces the staging modules (k8s.io/api, client-go, ...) with its own tree. A go.mod of
 * ours requires it and replaces each staging module with the release of the same number (the
 * usual way to build its commands outside its own tree). etcd builds from go.etcd.io/etcd the
 * same way. Binaries already built (a stamp beside them says what and how) are not built again.
 *
 *   node scripts/kubernetes/build.ts                  what the tests and the lab need: every command at every pinned release
 *   node scripts/kubernetes/build.ts --release 1.36.3 --commands kubeadm
 *
 * Exit 0 when everything asked for is in place, 1 when a build failed (one line naming the step,
 * the command, its exit code and the end of its output; also kept in the last-build-error file for
 * the tests that skip), 2 for bad arguments.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { withLockDir } from '../ensure-built.ts';
import { buildImages } from './images.ts';
import {
  ETCD_COMMANDS,
  KUBERNETES_COMMANDS,
  KUBERNETES_RELEASES,
  type KubernetesCommand,
  type KubernetesRelease,
  etcdBinDir,
  findRelease,
  kubernetesBinDir,
  kubernetesCacheRoot,
  lastBuildErrorFile,
} from './releases.ts';

/** The Go directive of k8s.io/kubernetes 1.36 and 1.37. */
const GO_MINIMUM = [1, 26] as const;
const BUILD_TIMEOUT_MS = 80 * 60_000;

interface PlanEntry {
  release: KubernetesRelease;
  commands: readonly KubernetesCommand[];
  etcd: boolean;
  /** The control-plane and pause images (scripts/kubernetes/images.ts), which need every command and etcd. */
  images: boolean;
}

/**
 * What `npm test` and `npm run lab` need: every pinned release in full (commands, etcd, images),
 * since the upgrade tests go from the older release to the newest on real nodes.
 */
const DEFAULT_PLAN: readonly PlanEntry[] = KUBERNETES_RELEASES.map((release) => ({
  release,
  commands: KUBERNETES_COMMANDS,
  etcd: true,
  images: true,
}));

class BuildError extends Error {}

interface Step {
  what: string;
  command: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
}

async function main(argv: string[]): Promise<number> {
  let plan: readonly PlanEntry[];
  try {
    plan = parsePlan(argv);
  } catch (error) {
    console.error(`kubernetes build: ${(error as Error).message}`);
    return 2;
  }
  const root = kubernetesCacheRoot();
  mkdirSync(root, { recursive: true });
  try {
    await withLockDir(
      path.join(root, '.lock'),
      async () => {
        await checkGo();
        for (const { release, commands, etcd, images } of plan) {
          await buildKubernetes(release, commands);
          if (etcd) await buildEtcd(release.etcd);
          if (images) await buildImages(release, await moduleDir(release.version), (what, command, cwd) => run({ what, command, cwd }));
        }
      },
      BUILD_TIMEOUT_MS,
    );
    rmSync(lastBuildErrorFile(), { force: true });
    return 0;
  } catch (error) {
    const line = (error instanceof BuildError ? error.message : `${(error as Error).stack ?? error}`).replace(/\s*\n\s*/g, ' | ');
    console.error(`kubernetes build: ${line}`);
    writeFileSync(lastBuildErrorFile(), `${line}\n`);
    return 1;
  }
}

function parsePlan(argv: string[]): readonly PlanEntry[] {
  const { values } = parseArgs({
    args: argv,
    options: { release: { type: 'string' }, commands: { type: 'string' } },
    strict: true,
  });
  if (!values.release) {
    if (values.commands) throw new Error('--commands goes with --release');
    return DEFAULT_PLAN;
  }
  const release = findRelease(values.release);
  if (!release) {
    throw new Error(`--release ${values.release}: not pinned; pinned: ${KUBERNETES_RELEASES.map((r) => r.version).join(', ')}`);
  }
  const known = new Set<string>([...KUBERNETES_COMMANDS, ...ETCD_COMMANDS]);
  const asked = values.commands ? values.commands.split(',').map((c) => c.trim()) : [...KUBERNETES_COMMANDS, 'etcd'];
  const unknown = asked.find((command) => !known.has(command));
  if (unknown !== undefined) throw new Error(`--commands: unknown command ${unknown}; known: ${[...known].join(', ')}`);
  const commands = KUBERNETES_COMMANDS.filter((command) => asked.includes(command));
  const etcd = asked.some((command) => (ETCD_COMMANDS as readonly string[]).includes(command));
  return [{ release, commands, etcd, images: values.commands === undefined }];
}

async function checkGo(): Promise<void> {
  let output: string;
  try {
    output = (await run({ what: 'checking Go', command: ['go', 'env', 'GOVERSION'], cwd: kubernetesCacheRoot() })).trim();
  } catch (error) {
    throw new BuildError(
      `Go ${GO_MINIMUM.join('.')} or newer is needed to build Kubernetes and was not found (${(error as Error).message})`,
    );
  }
  const [major = 0, minor = 0] = output.replace(/^go/, '').split('.').map(Number);
  if (major < GO_MINIMUM[0] || (major === GO_MINIMUM[0] && minor < GO_MINIMUM[1])) {
    throw new BuildError(`Go ${GO_MINIMUM.join('.')} or newer is needed to build Kubernetes; found ${output}`);
  }
}

async function buildKubernetes(release: KubernetesRelease, commands: readonly KubernetesCommand[]): Promise<void> {
  const version = release.version;
  const binDir = kubernetesBinDir(version);
  const stamp = { module: `k8s.io/kubernetes@v${version}`, ldflags: versionLdflags(version) };
  const missing = commands.filter((command) => !isBuilt(binDir, command, stamp));
  if (missing.length === 0) return;

  const workDir = path.join(kubernetesCacheRoot(), `v${version}`, 'src');
  mkdirSync(workDir, { recursive: true });
  const started = Date.now();
  const replaces = await stagingModules(version);
  const staging = `v0.${version.split('.').slice(1).join('.')}`;
  writeFileSync(
    path.join(workDir, 'go.mod'),
    [
      'module pke.local/kubernetes-build',
      '',
      'go 1.26.0',
      '',
      `require k8s.io/kubernetes v${version}`,
      '',
      'replace (',
      ...replaces.map((module) => `\t${module} => ${module} ${staging}`),
      ')',
      '',
    ].join('\n'),
  );
  console.error(`kubernetes build: v${version}: building ${missing.join(', ')} (a cold build takes a while on two cores)`);
  await goBuild(
    `v${version}`,
    workDir,
    binDir,
    missing.map((command) => ({ name: command, pkg: `k8s.io/kubernetes/cmd/${command}` })),
    stamp,
  );
  console.error(`kubernetes build: v${version}: ${missing.join(', ')} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

async function buildEtcd(etcdVersion: string): Promise<void> {
  const binDir = etcdBinDir(etcdVersion);
  const stamp = { module: `go.etcd.io/etcd/server/v3@v${etcdVersion}`, ldflags: [] };
  const missing = ETCD_COMMANDS.filter((command) => !isBuilt(binDir, command, stamp));
  if (missing.length === 0) return;
  const workDir = path.join(kubernetesCacheRoot(), `etcd-v${etcdVersion}`, 'src');
  mkdirSync(workDir, { recursive: true });
  const started = Date.now();
  writeFileSync(
    path.join(workDir, 'go.mod'),
    [
      'module pke.local/etcd-build',
      '',
      'go 1.26.0',
      '',
      'require (',
      `\tgo.etcd.io/etcd/server/v3 v${etcdVersion}`,
      `\tgo.etcd.io/etcd/etcdctl/v3 v${etcdVersion}`,
      `\tgo.etcd.io/etcd/etcdutl/v3 v${etcdVersion}`,
      ')',
      '',
    ].join('\n'),
  );
  console.error(`kubernetes build: etcd v${etcdVersion}: building ${missing.join(', ')}`);
  const packages = { etcd: 'go.etcd.io/etcd/server/v3', etcdctl: 'go.etcd.io/etcd/etcdctl/v3', etcdutl: 'go.etcd.io/etcd/etcdutl/v3' };
  await goBuild(
    `etcd v${etcdVersion}`,
    workDir,
    binDir,
    missing.map((name) => ({ name, pkg: packages[name] })),
    stamp,
  );
  console.error(`kubernetes build: etcd v${etcdVersion}: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/** k8s.io/kubernetes in the module cache (downloaded when missing): its go.mod and its source tree. */
async function downloadModule(version: string): Promise<{ GoMod?: string; Dir?: string }> {
  const output = await run({
    what: `v${version}: downloading k8s.io/kubernetes`,
    command: ['go', 'mod', 'download', '-json', `k8s.io/kubernetes@v${version}`],
    cwd: kubernetesCacheRoot(),
    env: { GOFLAGS: '-mod=mod' },
  });
  return JSON.parse(output) as { GoMod?: string; Dir?: string };
}

async function moduleDir(version: string): Promise<string> {
  const { Dir: dir } = await downloadModule(version);
  if (!dir) throw new BuildError(`v${version}: go mod download named no source directory for k8s.io/kubernetes`);
  return dir;
}

/**
 * The staging modules that k8s.io/kubernetes replaces with its own tree, read from its go.mod
 * (the list changes between releases: k8s.io/streaming is new in 1.37).
 */
async function stagingModules(version: string): Promise<string[]> {
  const { GoMod: goMod } = await downloadModule(version);
  if (!goMod) throw new BuildError(`v${version}: go mod download named no go.mod for k8s.io/kubernetes`);
  const modules = [...readFileSync(goMod, 'utf8').matchAll(/^\s*(k8s\.io\/[\w.-]+)\s*=>\s*\.\/staging\/src\//gm)].map((m) => m[1]!);
  if (modules.length === 0) throw new BuildError(`v${version}: no staging modules found in ${goMod}`);
  return modules;
}

/**
 * One `go build` for all the commands (they share most packages), into a scratch directory
 * renamed into place, so that a build that fails half-way leaves no binary behind.
 */
async function goBuild(
  label: string,
  workDir: string,
  binDir: string,
  targets: Array<{ name: string; pkg: string }>,
  stamp: { module: string; ldflags: string[] },
): Promise<void> {
  const scratch = `${binDir}.${process.pid}.tmp`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const args = ['build', '-trimpath', '-ldflags', ['-s', '-w', ...stamp.ldflags].join(' ')];
  if (targets.length === 1) args.push('-o', path.join(scratch, targets[0]!.name));
  else args.push('-o', `${scratch}/`);
  args.push(...targets.map((target) => target.pkg));
  await run({
    what: `${label}: go build`,
    command: ['go', ...args],
    cwd: workDir,
    // Static binaries, as Kubernetes releases them; -mod=mod lets go fill in our go.sum.
    env: { CGO_ENABLED: '0', GOFLAGS: '-mod=mod -buildvcs=false' },
  });
  mkdirSync(binDir, { recursive: true });
  for (const { name, pkg } of targets) {
    // A directory output names each binary after its import path's last element, less a major
    // version suffix (server for go.etcd.io/etcd/server/v3).
    const built = [name, path.basename(pkg.replace(/\/v\d+$/, ''))]
      .map((file) => path.join(scratch, file))
      .find((file) => existsSync(file));
    if (!built) throw new BuildError(`${label}: go build made no binary for ${pkg} in ${scratch}`);
    renameSync(built, path.join(binDir, name));
    writeFileSync(stampFile(binDir, name), JSON.stringify(stamp));
  }
  rmSync(scratch, { recursive: true, force: true });
}

function stampFile(binDir: string, name: string): string {
  return path.join(binDir, `.${name}.built`);
}

function isBuilt(binDir: string, name: string, stamp: object): boolean {
  try {
    return existsSync(path.join(binDir, name)) && readFileSync(stampFile(binDir, name), 'utf8') === JSON.stringify(stamp);
  } catch {
    return false;
  }
}

/**
 * The version stamp `hack/lib/version.sh` gives a release build: kubeadm picks its defaults
 * (control-plane version, etcd image) and checks version skew from it; a build without it says
 * v0.0.0-master.
 */
function versionLdflags(version: string): string[] {
  const [major, minor] = version.split('.');
  const values: Record<string, string> = {
    gitVersion: `v${version}`,
    gitMajor: major!,
    gitMinor: minor!,
    gitTreeState: 'clean',
    gitCommit: `module-k8s.io/kubernetes@v${version}`,
    buildDate: '1970-01-01T00:00:00Z',
  };
  return ['k8s.io/client-go/pkg/version', 'k8s.io/component-base/version'].flatMap((pkg) =>
    Object.entries(values).map(([key, value]) => `-X ${pkg}.${key}=${value}`),
  );
}

async function run(step: Step): Promise<string> {
  const [file, ...args] = step.command;
  const result = await execa(file!, args, {
    cwd: step.cwd,
    env: step.env,
    reject: false,
    timeout: BUILD_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (!result.failed) return result.stdout;
  if (result.code === 'ENOENT') throw new BuildError(`${step.what}: ${file} not found`);
  const tail = failureText(result.stderr, result.stdout).split('\n').slice(-6).join('\n');
  throw new BuildError(
    `${step.what}: \`${shortCommand(step.command)}\` exited ${result.exitCode ?? result.signal}${proxyHint(tail)}: ${tail}`,
  );
}

/** What a failed command said: its stderr, or the `Error` that `go ... -json` puts in its stdout instead. */
function failureText(stderr: string, stdout: string): string {
  if (stderr.trim()) return stderr.trim();
  try {
    return String((JSON.parse(stdout) as { Error?: unknown }).Error ?? stdout).trim();
  } catch {
    return stdout.trim();
  }
}

function shortCommand(command: string[]): string {
  const text = command.join(' ');
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** The one cause worth naming first: the module proxy could not be reached. */
function proxyHint(stderr: string): string {
  if (!/dial tcp|no such host|proxyconnect|i\/o timeout|connection refused|TLS handshake/i.test(stderr)) return '';
  return ` (the Go module proxy${process.env.GOPROXY ? ` ${process.env.GOPROXY}` : ''} could not be reached)`;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
