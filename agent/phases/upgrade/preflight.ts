import path from 'node:path';
import { PkeError } from '../../core/errors.ts';
import { Journal } from '../../journal/journal.ts';
import { binaryVersion, checkStagedRelease, stagedImages, stagedReleaseDir } from '../../kube/staged-release.ts';
import type { Phase } from '../phase.ts';
import type { UpgradeInputs, UpgradePreflightOutput } from './inputs.ts';

/**
 * Before its turn, every node checks that it can finish: its bootstrap is done, the new
 * release is staged (kubeadm, kubelet, kubectl at the new version), the installed version is at
 * most one minor older, and the staged images are in containerd (air-gapped sites). Nodes do
 * this at once, while others upgrade, so a node's turn is only its own downtime.
 */
export function upgradePreflightPhase({ to }: UpgradeInputs): Phase<UpgradePreflightOutput> {
  return {
    name: 'upgrade-preflight',
    summary: `The bootstrap is done, Kubernetes v${to} is staged under ${stagedReleaseDir(to)}, its images are in containerd`,
    needs: [],
    run: async ({ host, log, signal }) => {
      const bootstrap = await Journal.read(host);
      const nodeName = (bootstrap?.phases.register?.output as { nodeName?: string } | undefined)?.nodeName;
      if (!nodeName || bootstrap?.phases['signal-ready']?.state !== 'done')
        throw new PkeError(
          'this node has not finished its bootstrap (pke-agent status shows where it is); an upgrade starts from a Ready node',
        );
      await checkStagedRelease(host, to);
      const installed = await host.which('kubelet');
      if (!installed) throw new PkeError('no kubelet on PATH: the upgrade replaces the installed one, and finds none');
      const from = await binaryVersion(host, installed, 'kubelet');
      const [fromMinor, toMinor] = [from, to].map((v) => Number(v.split('.')[1]));
      if (fromMinor === undefined || toMinor === undefined || toMinor - fromMinor > 1 || toMinor < fromMinor)
        throw new PkeError(`this node runs kubelet v${from}: v${to} is not the same or the next minor version (one minor at a time)`);
      const images = await stagedImages(host, to);
      for (const image of images) {
        signal.throwIfAborted();
        await host.run('ctr', ['-n', 'k8s.io', 'images', 'import', host.file(image)], { timeoutMs: 10 * 60_000, signal });
      }
      log.info('upgrade.preflight', { from, to, images: images.length });
      return { nodeName, from, installedDir: path.dirname(installed), imagesImported: images.length };
    },
  };
}
