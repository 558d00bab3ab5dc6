import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { withLockDir } from '../../scripts/ensure-built.ts';
import { cacheDir, findExecutable, runOk } from './support.ts';

/**
 * govc, the govmomi CLI, for the provisioning benchmark's side-by-side. Debian's
 * golang-github-vmware-govmomi-dev leaves govc out, so it is built from the govmomi Go module of
 * the same version as the simulator's (through the Go module proxy), with a go.mod of our own:
 * `go install ...@version` refuses a module whose go.mod has replace directives, as govmomi's has.
 */

export const GOVMOMI_VERSION = 'v0.24.2';
const GO = '/usr/local/go/bin/go';

export function govcMissing(): string | undefined {
  return findExecutable([GO]) ? undefined : `${GO} not found (the Go toolchain that builds Kubernetes)`;
}

export async function govcBinary(): Promise<string> {
  const dir = cacheDir('govc');
  const binary = path.join(dir, `govc-${GOVMOMI_VERSION}`);
  if (existsSync(binary)) return binary;
  return withLockDir(path.join(dir, '.lock'), async () => {
    if (existsSync(binary)) return binary;
    const module = path.join(dir, `module-${process.pid}`);
    mkdirSync(module, { recursive: true });
    try {
      writeFileSync(path.join(module, 'go.mod'), `module pke-govc\n\ngo 1.19\n\nrequire github.com/vmware/govmomi ${GOVMOMI_VERSION}\n`);
      writeFileSync(path.join(module, 'tools.go'), '//go:build tools\n\npackage tools\n\nimport _ "github.com/vmware/govmomi/govc"\n');
      const env = { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: cacheDir('go-build'), CGO_ENABLED: '0' };
      await runOk(GO, ['mod', 'tidy', '-e'], { cwd: module, env, timeoutMs: 10 * 60_000 });
      await runOk(GO, ['build', '-o', `${binary}.tmp`, 'github.com/vmware/govmomi/govc'], { cwd: module, env, timeoutMs: 10 * 60_000 });
      renameSync(`${binary}.tmp`, binary);
    } finally {
      rmSync(module, { recursive: true, force: true });
      rmSync(`${binary}.tmp`, { force: true });
    }
    return binary;
  });
}
