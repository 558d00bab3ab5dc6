import { CommandError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import { maskSecrets } from './kubeadm.ts';

/**
 * kubeadm's upgrade runs, with the new release's own kubeadm (a staged binary): `upgrade apply`
 * on the first control-plane node (the cluster's configuration, its control plane, etcd, the
 * kubelet configuration), `upgrade node` on every other node (its control plane if any, its
 * kubelet configuration). Both may be run again after a crash: kubeadm compares what runs with
 * the target and changes what differs.
 */

const UPGRADE_TIMEOUT_MS = 20 * 60_000;

export interface KubeadmUpgradeOptions {
  /** The staged kubeadm of the new version (a path on the host). */
  kubeadm: string;
  version: string;
  mode: 'apply' | 'node';
  /** kubeadm preflight checks this site fails on purpose (SystemVerification on cgroup v1 hosts). */
  ignorePreflightErrors: string[];
  log: Logger;
  signal?: AbortSignal;
}

export async function kubeadmUpgrade(host: Host, options: KubeadmUpgradeOptions): Promise<void> {
  const args = options.mode === 'apply' ? ['upgrade', 'apply', `v${options.version.replace(/^v/, '')}`, '--yes'] : ['upgrade', 'node'];
  if (options.ignorePreflightErrors.length > 0) args.push(`--ignore-preflight-errors=${options.ignorePreflightErrors.join(',')}`);
  const log = options.log.child({ command: `kubeadm upgrade ${options.mode}` });
  try {
    await host.run(options.kubeadm, args, {
      timeoutMs: UPGRADE_TIMEOUT_MS,
      signal: options.signal,
      onLine: (stream, line) => log.info('kubeadm.output', { stream, line: maskSecrets(line) }),
    });
  } catch (error) {
    if (error instanceof CommandError) {
      const lines = (error.context.stderrTail ?? '').split('\n').map((line) => line.trim());
      // The failed checks name the cause; the phase line only says that checks failed.
      const failedChecks = lines.filter((line) => line.startsWith('[ERROR'));
      const phase = lines.findLast((line) => /error execution phase|^error/.test(line));
      const reason = [phase, ...failedChecks].filter(Boolean).join('; ');
      if (reason) error.message = `${error.context.command} exited ${error.context.exitCode}: ${reason}`;
    }
    throw error;
  }
}
