import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ETCD_COMMANDS,
  type EtcdCommand,
  type KubernetesCommand,
  type KubernetesRelease,
  etcdBinDir,
  kubernetesBinDir,
  lastBuildErrorFile,
} from './releases.ts';

/**
 * The real Kubernetes binaries that scripts/kubernetes/build.ts made (`npm test` runs it first),
 * or why they are not there: the reason a test of the real tier skips with.
 */
export type RealBinaries =
  | { available: true; path: (command: KubernetesCommand | EtcdCommand) => string }
  | { available: false; reason: string };

export function realBinaries(release: KubernetesRelease, commands: ReadonlyArray<KubernetesCommand | EtcdCommand>): RealBinaries {
  const pathOf = (command: KubernetesCommand | EtcdCommand) =>
    (ETCD_COMMANDS as readonly string[]).includes(command)
      ? path.join(etcdBinDir(release.etcd), command)
      : path.join(kubernetesBinDir(release.version), command);
  const missing = commands.filter((command) => !existsSync(pathOf(command)));
  if (missing.length === 0) return { available: true, path: pathOf };
  let why = 'run `node scripts/kubernetes/build.ts`';
  try {
    why = `the last build failed: ${readFileSync(lastBuildErrorFile(), 'utf8').trim()}`;
  } catch {
    // No failure recorded: never built.
  }
  return { available: false, reason: `real Kubernetes v${release.version} not built (${missing.join(', ')} missing); ${why}` };
}
