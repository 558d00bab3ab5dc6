import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderInitConfig, renderJoinConfig } from '../../agent/kube/kubeadm-config.ts';
import type { RegisterOutput } from '../../agent/journal/phase-outputs.ts';
import { KUBERNETES_RELEASES } from '../../scripts/kubernetes/releases.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { agentConfig } from '../helpers/standins.ts';

/**
 * The configs the agent renders, checked by the real kubeadm of every pinned release; and the
 * kubeadm stand-in's refusals checked against what the real one prints for the same files.
 */

const TOKEN = 'abcdef.0123456789abcdef';
const CA_HASH = `sha256:${'ab'.repeat(32)}`;
const node: RegisterOutput = { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: 'ens192', ips: ['10.10.0.11', '192.168.5.4'] };
const scratch = mkdtempSync(path.join(tmpdir(), 'pke-kubeadm-real-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** What a site like the lab's gives: cgroupfs, cgroup v1 hosts, a mirror, no kube-proxy or CoreDNS. */
const SITE = { cgroupDriver: 'cgroupfs' as const, allowCgroupV1: true, imageRepository: 'registry.example.net/k8s' };
const NO_KUBEADM_ADDONS = { cni: 'none' as const, kubeProxy: false, coreDns: false };

function renders(version: string) {
  const labels = { 'topology.kubernetes.io/zone': 'rack-1', team: 'infra' };
  const taints = [{ key: 'dedicated', value: 'infra', effect: 'NoExecute' as const }];
  const master = agentConfig({ kubernetes: { version, cloudProvider: 'external' }, labels, taints });
  const worker = agentConfig({ kubernetes: { version }, role: 'worker', pool: 'workers', labels });
  const discovery = { endpoint: '10.10.0.100:6443', token: TOKEN, caCertHash: CA_HASH };
  const site = agentConfig({ kubernetes: { version, ...SITE }, addons: NO_KUBEADM_ADDONS });
  const siteWorker = agentConfig({ kubernetes: { version, ...SITE }, role: 'worker', pool: 'workers' });
  return {
    init: renderInitConfig({
      config: master,
      node: { ...node, biosUuid: '4237c1d6-0000-1111-2222-333344445555' },
      bootstrapToken: { token: TOKEN, ttlSeconds: 7200 },
    }),
    'control-plane join': renderJoinConfig({ config: master, node, discovery }),
    'worker join': renderJoinConfig({ config: worker, node, discovery }),
    'site init': renderInitConfig({ config: site, node, bootstrapToken: { token: TOKEN, ttlSeconds: 7200 } }),
    'site worker join': renderJoinConfig({ config: siteWorker, node, discovery }),
  };
}

function kubeadm(binary: string, args: string[]) {
  return execa(binary, args, { reject: false, timeout: 60_000 });
}

describe.each(KUBERNETES_RELEASES)('real kubeadm v$version', (release) => {
  const binaries = realBinaries(release, ['kubeadm']);
  const kubeadmPath = binaries.available ? binaries.path('kubeadm') : '';
  const validate = (name: string, text: string) => {
    const file = path.join(scratch, `${release.version}-${name.replace(/\W+/g, '-')}.yaml`);
    writeFileSync(file, text);
    return kubeadm(kubeadmPath, ['config', 'validate', '--config', file]);
  };

  it.skipIf(!binaries.available)('accepts the init, control-plane join and worker join configs without a warning', async () => {
    for (const [name, text] of Object.entries(renders(release.version))) {
      const result = await validate(name, text);
      expect({ name, exitCode: result.exitCode, stdout: result.stdout }).toMatchObject({
        name,
        exitCode: 0,
        stdout: expect.stringContaining('ok'),
      });
      expect(result.stderr, `${name}: kubeadm warned`).not.toMatch(/^W\d{4}|unknown field|deprecated/m);
    }
  });

  it.skipIf(!binaries.available)('says which etcd and pause images it deploys, as pinned in releases.ts', async () => {
    const { exitCode, stdout } = await kubeadm(kubeadmPath, ['config', 'images', 'list', '--kubernetes-version', `v${release.version}`]);
    expect(exitCode).toBe(0);
    expect(stdout).toContain(`registry.k8s.io/etcd:${release.etcd}-0`);
    expect(stdout).toContain(`registry.k8s.io/pause:${release.pause}`);
    expect(stdout).toContain(`registry.k8s.io/kube-apiserver:v${release.version}`);
  });

  it.skipIf(!binaries.available)(
    "pulls its images from the site's mirror and none for kube-proxy or CoreDNS when they are off",
    async () => {
      const file = path.join(scratch, `${release.version}-site-images.yaml`);
      writeFileSync(file, renders(release.version)['site init']);
      const { exitCode, stdout, stderr } = await kubeadm(kubeadmPath, ['config', 'images', 'list', '--config', file]);
      expect(exitCode, stderr).toBe(0);
      const images = stdout.trim().split('\n');
      expect(images).toContain(`registry.example.net/k8s/kube-apiserver:v${release.version}`);
      expect(images).toContain(`registry.example.net/k8s/etcd:${release.etcd}-0`);
      expect(images.filter((image) => /kube-proxy|coredns/.test(image))).toEqual([]);
    },
  );

  it.skipIf(!binaries.available)("refuses what the kubeadm stand-in refuses, with the stand-in's words", async () => {
    const init = renders(release.version).init;
    const withV1beta3Args = init.replace(
      /kubeletExtraArgs:\n(\s+- name: .*\n\s+value: .*\n)+/,
      'kubeletExtraArgs:\n    node-ip: 10.10.0.11\n',
    );
    const mapArgs = await validate('map-args', withV1beta3Args);
    expect(mapArgs.exitCode).toBe(1);
    expect(mapArgs.stderr).toContain(
      'cannot unmarshal object into Go struct field NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs of type []v1beta4.Arg',
    );

    const unknown = await validate('unknown-field', init.replace('kind: InitConfiguration\n', 'kind: InitConfiguration\nbogusField: 1\n'));
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain('unknown field "bogusField"');
  });
});
