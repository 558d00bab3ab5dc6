import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { caCertHash, createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { httpsClusterApi, parseAdminKubeconfig } from '../../agent/controller/kubernetes/cluster-api.ts';
import { renderJoinConfig } from '../../agent/kube/kubeadm-config.ts';
import { kubeadmReset } from '../../agent/kube/kubeadm.ts';
import { KUBEADM_JOIN_CONFIG } from '../../agent/kube/paths.ts';
import { freePort } from '../../scripts/free-port.ts';
import {
  agentConfig,
  createStandinNode,
  initLeader,
  markHostPrepared,
  withEnv,
  writeSharedPki,
  type StandinNode,
} from '../helpers/standins.ts';
import { httpsRequest } from './standin-https.ts';

/** The stand-ins answer as the real tools do, so the phases' check-first logic is tested against real behaviour. */
describe('stand-ins', () => {
  const nodes: StandinNode[] = [];
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.cleanup();
  });
  async function scratch(): Promise<StandinNode> {
    const node = await createStandinNode();
    nodes.push(node);
    return node;
  }

  it('systemctl keeps unit state and answers with systemctl exit codes', async () => {
    const { host } = await scratch();
    const systemctl = (...args: string[]) => host.run('systemctl', args, { okExitCodes: [1, 3, 5] });
    expect(await systemctl('is-active', 'containerd')).toMatchObject({ exitCode: 3, stdout: 'inactive\n' });
    expect(await systemctl('is-enabled', 'containerd')).toMatchObject({ exitCode: 1, stdout: 'disabled\n' });
    expect(await systemctl('start', 'nosuch')).toMatchObject({
      exitCode: 5,
      stderr: 'Failed to start nosuch.service: Unit nosuch.service not found.\n',
    });
    expect(await systemctl('reload', 'containerd')).toMatchObject({ exitCode: 1 });
    expect(await systemctl('enable', '--now', 'containerd.service')).toMatchObject({ exitCode: 0 });
    expect(await systemctl('is-active', '--quiet', 'containerd')).toMatchObject({ exitCode: 0, stdout: '' });
    expect(await systemctl('is-enabled', 'containerd')).toMatchObject({ exitCode: 0, stdout: 'enabled\n' });
    // One block per unit in argument order, properties in systemd's order; an unknown unit is inactive with no unit file state.
    expect(await systemctl('show', '--property=UnitFileState,ActiveState', 'containerd', 'kubelet', 'nosuch')).toMatchObject({
      exitCode: 0,
      stdout:
        'ActiveState=active\nUnitFileState=enabled\n\nActiveState=inactive\nUnitFileState=disabled\n\nActiveState=inactive\nUnitFileState=\n',
    });
    expect(await systemctl('show', '-p', 'Id,LoadState', '--value', 'nosuch')).toMatchObject({
      exitCode: 0,
      stdout: 'nosuch.service\nnot-found\n',
    });
  });

  it('sysctl and modprobe act out the kernel: bridge settings exist only once br_netfilter is loaded', async () => {
    const { host } = await scratch();
    const sysctl = (...args: string[]) => host.run('sysctl', args, { okExitCodes: [255] });
    expect(await sysctl('-n', 'net.bridge.bridge-nf-call-iptables')).toMatchObject({
      exitCode: 255,
      stderr: 'sysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory\n',
    });
    expect(await sysctl('-n', 'net.ipv4.ip_forward')).toMatchObject({ exitCode: 0, stdout: '0\n' });
    // Without -a the words after the module are its parameters, not more modules.
    await host.run('modprobe', ['br_netfilter', 'dm-crypt']);
    expect(await host.exists('/sys/module/br_netfilter')).toBe(true);
    expect(await host.exists('/sys/module/dm_crypt')).toBe(false);
    await host.run('modprobe', ['-a', 'overlay', 'dm-crypt']);
    expect(await host.list('/sys/module')).toEqual(['br_netfilter', 'dm_crypt', 'overlay']);
    expect(await sysctl('-n', 'net.bridge.bridge-nf-call-iptables')).toMatchObject({ exitCode: 0, stdout: '1\n' });
    await host.writeFile('/etc/sysctl.d/50-test.conf', '# comment\nnet.ipv4.ip_forward = 1\n-net.does.not.exist = 1\n');
    expect(await sysctl('--system')).toMatchObject({ exitCode: 0 });
    expect(await sysctl('-n', 'net.ipv4.ip_forward')).toMatchObject({ stdout: '1\n' });
    expect(await sysctl('-w', 'net.ipv4.ip_forward=0')).toMatchObject({ exitCode: 0, stdout: 'net.ipv4.ip_forward = 0\n' });
  });

  it('kubeadm reset stops the API server stand-in init started and removes what init wrote', async () => {
    const pki = await createClusterPki();
    const clusterDir = await mkdtemp(path.join(tmpdir(), 'pke-clusters-'));
    try {
      const leader = await initLeader(pki, clusterDir);
      nodes.push(leader.node);
      const { host } = leader.node;
      const pid = Number((await host.readText('/run/pke-standins/apiserver.pid'))?.trim());
      expect(() => process.kill(pid, 0)).not.toThrow();
      const livez = await httpsRequest(`https://127.0.0.1:${leader.port}/livez`, { ca: pki['ca.crt'] });
      expect(livez).toEqual({ status: 200, body: 'ok' });

      await kubeadmReset(host, leader.node.log, { keepSharedPki: true });
      expect(() => process.kill(pid, 0)).toThrow();
      await expect(httpsRequest(`https://127.0.0.1:${leader.port}/livez`, { ca: pki['ca.crt'] })).rejects.toMatchObject({
        code: 'ECONNREFUSED',
      });
      for (const file of [
        '/etc/kubernetes/admin.conf',
        '/etc/kubernetes/manifests/etcd.yaml',
        '/etc/kubernetes/pki/apiserver.crt',
        '/var/lib/kubelet/config.yaml',
      ]) {
        expect(await host.exists(file)).toBe(false);
      }
      // The agent put back what kubeadm reset removed but the cluster still needs.
      expect(await host.readText('/etc/kubernetes/pki/ca.key')).toBe(pki['ca.key']);
      expect(await host.fileMode('/etc/kubernetes/pki/ca.key')).toBe(0o600);
    } finally {
      await rm(clusterDir, { recursive: true, force: true });
    }
  });

  it('kubeadm join --control-plane deploys the version kubeadm-config names, and fails its image preflight on a node of another release', async () => {
    const pki = await createClusterPki();
    const clusterDir = await mkdtemp(path.join(tmpdir(), 'pke-clusters-'));
    try {
      const leader = await initLeader(pki, clusterDir);
      nodes.push(leader.node);
      const api = httpsClusterApi(parseAdminKubeconfig((await leader.node.host.readText('/etc/kubernetes/admin.conf')) ?? ''));
      try {
        // init uploaded its ClusterConfiguration; its kubelet reports init's version.
        expect(await api.kubeadmKubernetesVersion()).toBe('1.31.2');
        expect(await api.nodeInfo('cp-1')).toEqual({ found: true, ready: true, kubeletVersion: 'v1.31.2' });

        const joiner = await scratch();
        await markHostPrepared(joiner);
        await writeSharedPki(joiner, pki);
        const config = agentConfig({
          role: 'master',
          pool: 'control-plane',
          nodeName: 'cp-2',
          controlPlaneEndpoint: { vip: '127.0.0.1', port: leader.port },
        });
        const discovery = { endpoint: `127.0.0.1:${leader.port}`, token: leader.token, caCertHash: caCertHash(pki['ca.crt'] ?? '') };
        const node = { nodeName: 'cp-2', primaryIp: '10.10.0.12', interface: 'eth0', ips: ['10.10.0.12'] };
        await joiner.host.writeFile(KUBEADM_JOIN_CONFIG, renderJoinConfig({ config, node, discovery }), { mode: 0o600 });
        const env = {
          PKE_STANDIN_KUBEADM_VERSION: 'v1.32.0',
          PKE_STANDIN_APISERVER_LISTEN: `127.0.0.1:${await freePort()}`,
          PKE_STANDIN_CLUSTER_DIR: clusterDir,
        };
        const join = () =>
          withEnv(env, () => joiner.host.run('kubeadm', ['join', '--config', joiner.host.file(KUBEADM_JOIN_CONFIG)], { okExitCodes: [1] }));

        const refused = await join();
        expect(refused.exitCode).toBe(1);
        // As real kubeadm on a template of the newer release (test/e2e/real-replace-upgrade.test.ts):
        // the join would deploy the older control plane, whose images this node does not have.
        expect(refused.stderr).toContain('error execution phase preflight: [preflight] Some fatal errors occurred:\n');
        for (const component of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'])
          expect(refused.stderr).toContain(`\t[ERROR ImagePull]: failed to pull image registry.k8s.io/${component}:v1.31.2: `);
        expect(await joiner.host.exists('/etc/kubernetes/manifests/kube-apiserver.yaml')).toBe(false);
        expect(await api.nodeInfo('cp-2')).toEqual({ found: false, ready: false });

        expect(await api.setKubeadmKubernetesVersion('1.32.0')).toBe(true);
        const joined = await join();
        expect(joined.exitCode).toBe(0);
        for (const component of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'])
          expect(await joiner.host.readText(`/etc/kubernetes/manifests/${component}.yaml`)).toContain(
            `image: registry.k8s.io/${component}:v1.32.0\n`,
          );
        expect(await api.nodeInfo('cp-2')).toEqual({ found: true, ready: true, kubeletVersion: 'v1.32.0' });
        expect(await api.nodeInfo('cp-1')).toMatchObject({ kubeletVersion: 'v1.31.2' });
      } finally {
        await api.close();
      }
    } finally {
      await rm(clusterDir, { recursive: true, force: true });
    }
  });
});
