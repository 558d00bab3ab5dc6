import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * scripts/kubernetes/build.ts as a user meets it when things go wrong: bad arguments, and a
 * machine that cannot reach the Go module proxy (an empty module cache, GOPROXY=off).
 */
const BUILD = path.resolve(import.meta.dirname, '../../scripts/kubernetes/build.ts');
const scratch = mkdtempSync(path.join(tmpdir(), 'pke-kubernetes-build-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const cache = path.join(scratch, 'cache');

function build(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [BUILD, ...args], { env: { PKE_KUBERNETES_CACHE: cache, ...env }, reject: false, timeout: 60_000 });
}

describe('building Kubernetes from its Go modules', () => {
  it('refuses a release that is not pinned, or an unknown command, in one line with exit 2', async () => {
    const release = await build(['--release', '1.20.0']);
    expect(release.exitCode).toBe(2);
    expect(release.stderr.trim()).toBe('kubernetes build: --release 1.20.0: not pinned; pinned: 1.37.2, 1.36.3');
    const command = await build(['--release', '1.37.2', '--commands', 'kubeadm,kube-proxy']);
    expect(command.exitCode).toBe(2);
    expect(command.stderr).toContain('--commands: unknown command kube-proxy');
  });

  it("fails in one line naming the step, the command and go's answer when the module proxy is out of reach, and keeps it for the tests that skip", async () => {
    const modules = path.join(scratch, 'gomodcache');
    const result = await build(['--release', '1.36.3', '--commands', 'kubeadm'], {
      GOPROXY: 'off',
      GOMODCACHE: modules,
      GOFLAGS: '-mod=mod',
    });
    expect(result.exitCode).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^kubernetes build: v1\.36\.3: downloading k8s\.io\/kubernetes: `go mod download -json k8s\.io\/kubernetes@v1\.36\.3` exited 1/,
    );
    expect(lines[0]).toContain('GOPROXY=off');
    expect(readFileSync(path.join(cache, 'last-build-error'), 'utf8')).toBe(`${lines[0]!.replace(/^kubernetes build: /, '')}\n`);
    expect(existsSync(path.join(cache, 'v1.36.3', 'bin', 'kubeadm'))).toBe(false);
  });
});
