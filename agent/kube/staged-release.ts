import { PkeError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';

/**
 * A Kubernetes release staged on a node for an upgrade, before its turn: the image build (or the
 * operator, or a configuration tool) puts the new version's binaries and, for an air-gapped
 * site, its images under one versioned directory:
 *
 *   /opt/pke/kubernetes/v<VERSION>/bin/{kubeadm,kubelet,kubectl}
 *   /opt/pke/kubernetes/v<VERSION>/images/*.tar   (docker-archives; optional with a registry)
 *
 * The upgrade runs kubeadm from there, and points the installed commands (where PATH finds
 * them: /usr/bin on a node from the image) at the staged ones once kubeadm is done.
 */

export const STAGED_RELEASES_DIR = '/opt/pke/kubernetes';
export const UPGRADED_COMMANDS = ['kubeadm', 'kubelet', 'kubectl'] as const;
export type UpgradedCommand = (typeof UPGRADED_COMMANDS)[number];

export function stagedReleaseDir(version: string): string {
  return `${STAGED_RELEASES_DIR}/v${version.replace(/^v/, '')}`;
}

export function stagedBinary(version: string, command: UpgradedCommand): string {
  return `${stagedReleaseDir(version)}/bin/${command}`;
}

const VERSION_IN = /v(\d+\.\d+\.\d+)/;

/** The version a kubeadm, kubelet or kubectl binary says it is (`kubeadm version -o short`, `kubelet --version`, `kubectl version --client`). */
export async function binaryVersion(host: Host, binary: string, command: UpgradedCommand): Promise<string> {
  const args = command === 'kubeadm' ? ['version', '-o', 'short'] : command === 'kubelet' ? ['--version'] : ['version', '--client'];
  const { stdout } = await host.run(binary, args, { timeoutMs: 30_000 });
  const version = VERSION_IN.exec(stdout)?.[1];
  if (!version) throw new PkeError(`${binary} ${args.join(' ')} printed no version: ${stdout.trim().slice(0, 200)}`);
  return version;
}

/**
 * Checks the staged release: each command there and at `version`. Throws naming the file and
 * what is wrong: an upgrade must not start on a node that cannot finish it.
 */
export async function checkStagedRelease(host: Host, version: string): Promise<void> {
  for (const command of UPGRADED_COMMANDS) {
    const file = stagedBinary(version, command);
    if (!(await host.exists(file)))
      throw new PkeError(`${file} is missing: stage Kubernetes v${version} under ${stagedReleaseDir(version)} before the upgrade`, {
        context: { path: file },
      });
    const found = await binaryVersion(host, host.file(file), command);
    if (found !== version.replace(/^v/, '')) throw new PkeError(`${file} is v${found}, not v${version}`, { context: { path: file } });
  }
}

/** The staged images (docker-archives) for containerd, if the site stages them. */
export async function stagedImages(host: Host, version: string): Promise<string[]> {
  const dir = `${stagedReleaseDir(version)}/images`;
  return (await host.list(dir)).filter((name) => name.endsWith('.tar')).map((name) => `${dir}/${name}`);
}
