#!/usr/bin/env node
// Bundles the Node stand-ins (test/standins: kubeadm, kubectl, the API server, the vSphere guestinfo channel) with esbuild into
// one ES module each under .cache/standins/, which their wrappers in test/standins/bin run: a
// bundle spares every stand-in run resolving, reading and type-stripping some hundred modules.
// The wrappers run this when a bundle is missing or older than a file it may be built from
// (test/standins/node-standin.sh); scripts/setup.sh runs it ahead of the tests and the lab.
import { mkdirSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(repo, '.cache/standins');
// In the order they are put in place: the API server's before kubeadm's, which starts it.
const STANDINS = ['apiserver-standin', 'kubeadm-standin', 'kubectl-standin', 'vsphere-guest-standin'];

// Stamped on the bundles as their mtime, so that a source saved while this build reads it is newer
// than them: a second before the build began, as file times come from a coarser clock than Date.
const started = new Date(Date.now() - 1000);
const { outputFiles } = await build({
  entryPoints: STANDINS.map((name) => path.join(repo, 'test/standins', `${name}.ts`)),
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  // The CommonJS packages bundled (yaml) require Node's builtins, which an ES module has no require for.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  write: false,
  logLevel: 'warning',
});
mkdirSync(outdir, { recursive: true });
// Written under a temporary name and renamed into place: stand-ins starting meanwhile (or building
// the same at the same time) find the old bundle or the new one, never half of one.
for (const name of STANDINS) {
  const bundle = path.join(outdir, `${name}.mjs`);
  const output = outputFiles.find((file) => file.path === bundle);
  if (!output) throw new Error(`build-standins: esbuild made no ${bundle}`);
  const unfinished = `${bundle}.${process.pid}.tmp`;
  writeFileSync(unfinished, output.contents);
  utimesSync(unfinished, started, started);
  renameSync(unfinished, bundle);
}
