import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Host } from '../../agent/host/host.ts';
import { upgradePreflightPhase } from '../../agent/phases/upgrade/preflight.ts';
import type { UpgradeApi } from '../../agent/protocol/upgrade-client.ts';
import { runContext } from '../helpers/run-context.ts';
import { scratchDir, searchPath } from '../helpers/cli.ts';

/**
 * upgrade-preflight refuses a node that could not finish its upgrade, before its turn. The
 * kubeadm, kubelet and kubectl here are two-line scripts printing a version as the real ones
 * print it (`kubeadm version -o short`, `kubelet --version`); the real ones run in
 * test/e2e/real-upgrade.test.ts.
 */
const scratches: ReturnType<typeof scratchDir>[] = [];
afterEach(() => {
  for (const s of scratches.splice(0)) s.remove();
});

function node(options: { bootstrapped?: boolean; installed?: string; staged?: Record<string, string> }) {
  const scratch = scratchDir('upgrade-preflight');
  scratches.push(scratch);
  const root = path.join(scratch.dir, 'root');
  const installed = path.join(scratch.dir, 'usr-bin');
  const write = (file: string, text: string, mode = 0o644) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    chmodSync(file, mode);
  };
  const script = (command: string, version: string) =>
    command === 'kubeadm'
      ? `#!/bin/sh\necho v${version}\n`
      : command === 'kubelet'
        ? `#!/bin/sh\necho Kubernetes v${version}\n`
        : `#!/bin/sh\necho "Client Version: v${version}"\n`;
  if (options.bootstrapped !== false) {
    const phase = { state: 'done', attempts: 1 };
    const journal = {
      version: 1,
      createdAt: 'x',
      updatedAt: 'x',
      phases: { register: { ...phase, output: { nodeName: 'w1' } }, 'signal-ready': phase },
    };
    write(path.join(root, 'var/lib/pke-agent/journal.json'), JSON.stringify(journal));
  }
  if (options.installed) write(path.join(installed, 'kubelet'), script('kubelet', options.installed), 0o755);
  for (const [command, version] of Object.entries(options.staged ?? {}))
    write(path.join(root, 'opt/pke/kubernetes/v1.37.2/bin', command), script(command, version), 0o755);
  const host = new Host({ root, path: searchPath([installed]) });
  const phase = upgradePreflightPhase({ to: '1.37.2', api: undefined as unknown as UpgradeApi });
  return { run: () => phase.run({ ...runContext(host), outputs: {} }), installed };
}

const STAGED = { kubeadm: '1.37.2', kubelet: '1.37.2', kubectl: '1.37.2' };

describe('upgrade-preflight', () => {
  it('takes a bootstrapped node with the release staged and a kubelet one minor older', async () => {
    const n = node({ installed: '1.36.3', staged: STAGED });
    expect(await n.run()).toEqual({ nodeName: 'w1', from: '1.36.3', installedDir: n.installed, imagesImported: 0 });
  });

  it('refuses a node whose bootstrap is not done', async () => {
    await expect(node({ bootstrapped: false, installed: '1.36.3', staged: STAGED }).run()).rejects.toThrow(
      /has not finished its bootstrap/,
    );
  });

  it('names a staged binary that is missing, or at another version', async () => {
    await expect(node({ installed: '1.36.3', staged: { kubeadm: '1.37.2', kubelet: '1.37.2' } }).run()).rejects.toThrow(
      '/opt/pke/kubernetes/v1.37.2/bin/kubectl is missing: stage Kubernetes v1.37.2 under /opt/pke/kubernetes/v1.37.2 before the upgrade',
    );
    await expect(node({ installed: '1.36.3', staged: { ...STAGED, kubelet: '1.36.3' } }).run()).rejects.toThrow(
      '/opt/pke/kubernetes/v1.37.2/bin/kubelet is v1.36.3, not v1.37.2',
    );
  });

  it('refuses a node more than one minor behind', async () => {
    await expect(node({ installed: '1.35.1', staged: STAGED }).run()).rejects.toThrow(
      'this node runs kubelet v1.35.1: v1.37.2 is not the same or the next minor version (one minor at a time)',
    );
  });
});
