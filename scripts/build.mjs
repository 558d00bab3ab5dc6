#!/usr/bin/env node
// Builds dist/pke-agent: an esbuild bundle of agent/ made into a Node single executable
// application (SEA) with postject, embedding the Node 24 that npm scripts run on.
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(repo, 'dist');
const bundle = path.join(dist, 'pke-agent.cjs');
const blob = path.join(dist, 'pke-agent.blob');
const executable = path.join(dist, 'pke-agent');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

if (!process.versions.node.startsWith('24.')) {
  throw new Error(`build: expected Node 24 (the devDependency), running ${process.versions.node}; run through npm run build`);
}

const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));
const commit = gitCommit();
mkdirSync(dist, { recursive: true });

// The executable's main script is tiny (agent/sea-main.ts): it answers `version` at once and
// otherwise compiles the CLI bundle, stored as a SEA asset with a V8 code cache made here.
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  minify: true,
  legalComments: 'none',
  define: {
    __PKE_VERSION__: JSON.stringify(pkg.version),
    __PKE_COMMIT__: JSON.stringify(commit),
    'import.meta.url': 'importMetaUrl',
  },
  inject: [path.join(repo, 'scripts/import-meta-url.cjs')],
  // yargs renders every command's help text when it dispatches, measuring each string with
  // string-width, which loads ICU's grapheme data and compiles Unicode-property regular
  // expressions: some 80 ms of CPU at every start. fast-string-width measures the same text.
  alias: { 'string-width': 'fast-string-width' },
  plugins: [etcdProtos()],
  logLevel: 'warning',
};
await build({ ...common, entryPoints: [path.join(repo, 'agent/sea-main.ts')], outfile: bundle });
const cliBundle = path.join(dist, 'cli.cjs');
await build({ ...common, entryPoints: [path.join(repo, 'agent/cli/main.ts')], outfile: cliBundle });

// Wrapped as CommonJS would wrap it, so that the code cache matches the source compiled at run time.
const cliAsset = path.join(dist, 'cli.wrapped.cjs');
const cliCache = path.join(dist, 'cli.cache');
writeFileSync(cliAsset, `(function (exports, require, module, __filename, __dirname) {${readFileSync(cliBundle, 'utf8')}\n})`);
execFileSync(process.execPath, [path.join(repo, 'scripts/code-cache.cjs'), cliAsset, cliCache], { stdio: 'inherit' });

const seaConfig = path.join(dist, 'sea-config.json');
writeFileSync(
  seaConfig,
  JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    // The young generation starts at its largest, 16 MB, rather than growing from V8's 1 MB by
    // scavenges while a short-lived agent allocates: some 40 ms of CPU per agent (0.5 s less over a
    // 13-node lab formation, whose VMs share the cores). No larger, so that the controller's peak
    // memory stays well under 250 MB at 1000 nodes (185–195 MB with it, 165–172 MB without).
    execArgv: ['--max-semi-space-size=16', '--min-semi-space-size=16'],
    assets: { 'cli.cjs': cliAsset, 'cli.cache': cliCache },
  }),
);
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });

// Made under a temporary name and renamed into place: a running lab or test never sees half an executable.
const unfinished = `${executable}.${process.pid}.tmp`;
copyFileSync(process.execPath, unfinished);
chmodSync(unfinished, 0o755);
// The Node binary from npm carries debug info; without it the executable is smaller.
try {
  execFileSync('strip', ['--strip-debug', unfinished], { stdio: 'ignore' });
} catch {
  console.warn('build: strip not available; the executable keeps its debug info');
}
try {
  // postject's ELF library warns about the stripped note sections; only a failure is worth showing.
  execFileSync(
    process.execPath,
    [path.join(repo, 'node_modules/postject/dist/cli.js'), unfinished, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
} catch (error) {
  rmSync(unfinished, { force: true });
  throw new Error(`build: postject failed: ${error.stderr?.toString() ?? error.message}`);
}
renameSync(unfinished, executable);
rmSync(blob);
console.log(`build: ${path.relative(repo, executable)} (${pkg.version}, commit ${commit})`);

/**
 * etcd3 (the controller's etcd backend) reads its gRPC .proto files from its package directory
 * when it loads; the executable has no such directory, so the files are embedded in the bundle
 * and written to a temporary directory for that one synchronous read.
 */
function etcdProtos() {
  return {
    name: 'etcd3-protos',
    setup(build) {
      build.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        // The call as etcd3's compiled source spells it (a template literal in a plain string).
        const call = ['(0, proto_loader_1.loadSync)(`$', '{__dirname}/../proto/rpc.proto`,'].join('');
        if (!source.includes(call)) throw new Error(`build: ${args.path} no longer loads its protos as expected; update etcdProtos()`);
        const protoDir = path.join(path.dirname(args.path), '../proto');
        const files = Object.fromEntries(
          ['rpc.proto', 'kv.proto', 'auth.proto'].map((name) => [name, readFileSync(path.join(protoDir, name), 'utf8')]),
        );
        const loader = `(function (files) {
  const fs = require('node:fs'), os = require('node:os'), p = require('node:path');
  const dir = fs.mkdtempSync(p.join(os.tmpdir(), 'pke-etcd-proto-'));
  try {
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(p.join(dir, name), text);
    return (options) => { try { return proto_loader_1.loadSync(p.join(dir, 'rpc.proto'), options); } finally { fs.rmSync(dir, { recursive: true, force: true }); } };
  } catch (error) { fs.rmSync(dir, { recursive: true, force: true }); throw error; }
})(${JSON.stringify(files)})(`;
        return { contents: source.replace(call, loader), loader: 'js' };
      });
    },
  };
}

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}
