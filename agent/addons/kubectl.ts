import type { Host } from '../host/host.ts';
import { ADMIN_KUBECONFIG } from '../kube/paths.ts';
import type { Workload } from './manifest.ts';

/** `kubectl apply` is idempotent: a second run reports objects unchanged and changes nothing. */
export async function applyManifests(host: Host, files: string[]): Promise<string> {
  const args = ['--kubeconfig', host.file(ADMIN_KUBECONFIG), 'apply', ...files.flatMap((file) => ['-f', host.file(file)])];
  const result = await host.run('kubectl', args, {
    timeoutMs: 120_000,
    displayArgs: ['--kubeconfig', ADMIN_KUBECONFIG, 'apply', ...files.flatMap((file) => ['-f', file])],
  });
  return result.stdout;
}

/**
 * Applies objects that carry secrets through kubectl's stdin: they never touch the disk, and
 * neither the command line nor the log shows them.
 */
export async function applySecretObjects(host: Host, yaml: string): Promise<string> {
  const args = ['--kubeconfig', host.file(ADMIN_KUBECONFIG), 'apply', '-f', '-'];
  const result = await host.run('kubectl', args, {
    input: yaml,
    timeoutMs: 120_000,
    displayArgs: ['--kubeconfig', ADMIN_KUBECONFIG, 'apply', '-f', '-'],
  });
  return result.stdout;
}

/** Waits for a workload's rollout; kubectl itself enforces the timeout and exits non-zero when it passes. */
export async function waitForRollout(host: Host, workload: Workload, timeoutSeconds: number): Promise<void> {
  const target = `${workload.kind.toLowerCase()}/${workload.name}`;
  const tail = ['-n', workload.namespace, 'rollout', 'status', target, `--timeout=${timeoutSeconds}s`];
  await host.run('kubectl', ['--kubeconfig', host.file(ADMIN_KUBECONFIG), ...tail], {
    timeoutMs: (timeoutSeconds + 30) * 1000,
    displayArgs: ['--kubeconfig', ADMIN_KUBECONFIG, ...tail],
  });
}
