import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CommandError, InputError } from '../../agent/core/errors.ts';
import { kubeadmApiVersion, nodeTaints, renderInitConfig, renderJoinConfig } from '../../agent/kube/kubeadm-config.ts';
import type { RegisterOutput } from '../../agent/journal/phase-outputs.ts';
import { agentConfig, createStandinNode, type StandinNode } from '../helpers/standins.ts';

const TOKEN = 'abcdef.0123456789abcdef';
const CA_HASH = `sha256:${'ab'.repeat(32)}`;
const node: RegisterOutput = { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: 'ens192', ips: ['10.10.0.11', '192.168.5.4'] };

// biome-ignore lint/suspicious/noExplicitAny: YAML documents read back for assertions, nested fields read without casts
type Doc = Record<string, any>;

type Kinds = Record<'InitConfiguration' | 'ClusterConfiguration' | 'KubeletConfiguration' | 'JoinConfiguration', Doc>;

/** The documents of a rendered config by kind; a kind the render lacks reads as undefined and fails the test. */
function docs(yamlText: string): Kinds {
  return Object.fromEntries(
    parseAllDocuments(yamlText)
      .map((d) => d.toJS() as Doc)
      .map((d) => [d.kind as string, d]),
  ) as Kinds;
}

function initFor(version: string, overrides = {}) {
  const config = agentConfig({ kubernetes: { version }, labels: { 'topology.kubernetes.io/zone': 'rack-1', team: 'infra' }, ...overrides });
  return renderInitConfig({ config, node, bootstrapToken: { token: TOKEN, ttlSeconds: 7200 } });
}

function joinFor(version: string, role: 'master' | 'worker') {
  const config = agentConfig({ kubernetes: { version }, role, pool: role === 'master' ? 'control-plane' : 'workers' });
  return renderJoinConfig({ config, node, discovery: { endpoint: '10.10.0.100:6443', token: TOKEN, caCertHash: CA_HASH } });
}

describe('kubeadm config API version', () => {
  it('is v1beta3 for 1.22 to 1.30 and v1beta4 from 1.31', () => {
    expect(kubeadmApiVersion('1.22.0')).toBe('kubeadm.k8s.io/v1beta3');
    expect(kubeadmApiVersion('v1.30.4')).toBe('kubeadm.k8s.io/v1beta3');
    expect(kubeadmApiVersion('1.31.2')).toBe('kubeadm.k8s.io/v1beta4');
    expect(kubeadmApiVersion('1.34.0')).toBe('kubeadm.k8s.io/v1beta4');
    expect(() => kubeadmApiVersion('1.21.9')).toThrow(InputError);
  });
});

describe('init config', () => {
  it('renders v1beta3 for 1.30.4: map extraArgs, timeoutForControlPlane, discovery timeout', () => {
    const { InitConfiguration: init, ClusterConfiguration: cluster, KubeletConfiguration: kubelet } = docs(initFor('1.30.4'));
    expect(init.apiVersion).toBe('kubeadm.k8s.io/v1beta3');
    expect(init.bootstrapTokens).toEqual([
      expect.objectContaining({
        token: TOKEN,
        ttl: '7200s',
        usages: ['signing', 'authentication'],
        groups: ['system:bootstrappers:kubeadm:default-node-token'],
      }),
    ]);
    expect(init.localAPIEndpoint).toEqual({ advertiseAddress: '10.10.0.11', bindPort: 6443 });
    expect(init.nodeRegistration).toEqual({
      name: 'cp-1',
      criSocket: 'unix:///run/containerd/containerd.sock',
      taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }],
      kubeletExtraArgs: { 'node-ip': '10.10.0.11', 'node-labels': 'team=infra,topology.kubernetes.io/zone=rack-1' },
    });
    expect(init.timeouts).toBeUndefined();
    expect(cluster).toMatchObject({
      apiVersion: 'kubeadm.k8s.io/v1beta3',
      clusterName: 'prod',
      kubernetesVersion: 'v1.30.4',
      controlPlaneEndpoint: '10.10.0.100:6443',
      networking: { podSubnet: '10.244.0.0/16', serviceSubnet: '10.96.0.0/12' },
      apiServer: { certSANs: ['10.10.0.100', 'cp-1', '10.10.0.11', '192.168.5.4'], timeoutForControlPlane: '4m0s' },
    });
    expect(kubelet).toEqual({ apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', cgroupDriver: 'systemd' });
  });

  it('renders v1beta4 for 1.31.2: name/value extraArgs and a timeouts block', () => {
    const { InitConfiguration: init, ClusterConfiguration: cluster } = docs(initFor('1.31.2'));
    expect(init.apiVersion).toBe('kubeadm.k8s.io/v1beta4');
    expect(init.nodeRegistration.kubeletExtraArgs).toEqual([
      { name: 'node-ip', value: '10.10.0.11' },
      { name: 'node-labels', value: 'team=infra,topology.kubernetes.io/zone=rack-1' },
    ]);
    expect(init.timeouts).toEqual({ controlPlaneComponentHealthCheck: '4m0s', kubeletHealthCheck: '4m0s' });
    expect(cluster.apiVersion).toBe('kubeadm.k8s.io/v1beta4');
    expect(cluster.kubernetesVersion).toBe('v1.31.2');
    expect(cluster.apiServer).toEqual({ certSANs: ['10.10.0.100', 'cp-1', '10.10.0.11', '192.168.5.4'] });
  });

  it("carries the site's node runtime and kubeadm add-ons: cgroup driver, cgroup v1 hosts, image mirror, kube-proxy and CoreDNS off", () => {
    const site = {
      kubernetes: {
        version: '1.37.2',
        cgroupDriver: 'cgroupfs' as const,
        allowCgroupV1: true,
        imageRepository: 'registry.example.net/k8s',
      },
      addons: { cni: 'none' as const, kubeProxy: false, coreDns: false },
    };
    const v1beta4 = docs(renderInitConfig({ config: agentConfig(site), node, bootstrapToken: { token: TOKEN, ttlSeconds: 7200 } }));
    expect(v1beta4.KubeletConfiguration).toEqual({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      cgroupDriver: 'cgroupfs',
      failCgroupV1: false,
    });
    expect(v1beta4.InitConfiguration.nodeRegistration.ignorePreflightErrors).toEqual(['SystemVerification']);
    expect(v1beta4.InitConfiguration.skipPhases).toBeUndefined();
    expect(v1beta4.ClusterConfiguration).toMatchObject({
      imageRepository: 'registry.example.net/k8s',
      proxy: { disabled: true },
      dns: { disabled: true },
    });

    const v1beta3 = docs(
      renderInitConfig({
        config: agentConfig({ ...site, kubernetes: { ...site.kubernetes, version: '1.30.4' } }),
        node,
        bootstrapToken: { token: TOKEN, ttlSeconds: 7200 },
      }),
    );
    expect(v1beta3.InitConfiguration.skipPhases).toEqual(['addon/kube-proxy', 'addon/coredns']);
    expect(v1beta3.ClusterConfiguration.proxy).toBeUndefined();
    // failCgroupV1 is a field from 1.31 on; a 1.30 kubelet would refuse it.
    expect(v1beta3.KubeletConfiguration).toEqual({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      cgroupDriver: 'cgroupfs',
    });

    const join = docs(
      renderJoinConfig({
        config: agentConfig({ ...site, role: 'worker', pool: 'workers' }),
        node,
        discovery: { endpoint: '10.10.0.100:6443', token: TOKEN, caCertHash: CA_HASH },
      }),
    );
    expect(join.JoinConfiguration.nodeRegistration.ignorePreflightErrors).toEqual(['SystemVerification']);
    expect(docs(initFor('1.37.2')).InitConfiguration.nodeRegistration.ignorePreflightErrors).toBeUndefined();
  });

  it('lists the control-plane taint of the version before the configured ones', () => {
    const taints = (version: string) =>
      nodeTaints(agentConfig({ kubernetes: { version }, taints: [{ key: 'dedicated', value: 'infra', effect: 'NoExecute' }] }));
    expect(taints('1.23.17')).toEqual([
      { key: 'node-role.kubernetes.io/master', effect: 'NoSchedule' },
      { key: 'dedicated', value: 'infra', effect: 'NoExecute' },
    ]);
    expect(taints('1.24.17').map((t) => t.key)).toEqual([
      'node-role.kubernetes.io/master',
      'node-role.kubernetes.io/control-plane',
      'dedicated',
    ]);
    expect(taints('1.31.2').map((t) => t.key)).toEqual(['node-role.kubernetes.io/control-plane', 'dedicated']);
    expect(nodeTaints(agentConfig({ role: 'worker', pool: 'workers' }))).toEqual([]);
  });
});

describe('join config', () => {
  it('carries discovery and, on control plane only, the controlPlane block (v1beta3)', () => {
    const worker = docs(joinFor('1.30.4', 'worker')).JoinConfiguration;
    expect(worker).toEqual({
      apiVersion: 'kubeadm.k8s.io/v1beta3',
      kind: 'JoinConfiguration',
      nodeRegistration: {
        name: 'cp-1',
        criSocket: 'unix:///run/containerd/containerd.sock',
        taints: [],
        kubeletExtraArgs: { 'node-ip': '10.10.0.11' },
      },
      discovery: { bootstrapToken: { apiServerEndpoint: '10.10.0.100:6443', token: TOKEN, caCertHashes: [CA_HASH] }, timeout: '5m0s' },
    });
    const master = docs(joinFor('1.30.4', 'master')).JoinConfiguration;
    expect(master.controlPlane).toEqual({ localAPIEndpoint: { advertiseAddress: '10.10.0.11', bindPort: 6443 } });
    expect(master.nodeRegistration.taints).toEqual([{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }]);
  });

  it('moves the discovery timeout into timeouts (v1beta4)', () => {
    const master = docs(joinFor('1.31.2', 'master')).JoinConfiguration;
    expect(master.apiVersion).toBe('kubeadm.k8s.io/v1beta4');
    expect(master.discovery).toEqual({ bootstrapToken: { apiServerEndpoint: '10.10.0.100:6443', token: TOKEN, caCertHashes: [CA_HASH] } });
    expect(master.timeouts).toEqual({
      discovery: '5m0s',
      tlsBootstrap: '5m0s',
      kubeletHealthCheck: '4m0s',
      controlPlaneComponentHealthCheck: '4m0s',
    });
    expect(master.nodeRegistration.kubeletExtraArgs).toEqual([{ name: 'node-ip', value: '10.10.0.11' }]);
  });
});

describe('the kubeadm stand-in checks the rendered configs', () => {
  let standin: StandinNode;
  beforeEach(async () => {
    standin = await createStandinNode();
  });
  afterEach(async () => {
    await standin.cleanup();
  });

  const validate = async (text: string, env: Record<string, string> = {}) => {
    await standin.host.writeFile('/tmp/kubeadm.yaml', text);
    return standin.host.run('kubeadm', ['config', 'validate', '--config', standin.host.file('/tmp/kubeadm.yaml')], { env });
  };

  it.each(['1.30.4', '1.31.2'])('accepts the init and join configs for %s', async (version) => {
    await expect(validate(initFor(version))).resolves.toMatchObject({ exitCode: 0 });
    await expect(validate(joinFor(version, 'worker'))).resolves.toMatchObject({ exitCode: 0 });
    await expect(validate(joinFor(version, 'master'))).resolves.toMatchObject({ exitCode: 0 });
  });

  it('rejects a v1beta4-only field in a v1beta3 config', async () => {
    const text = initFor('1.30.4').replace('kind: InitConfiguration\n', 'kind: InitConfiguration\ntimeouts:\n  kubeletHealthCheck: 4m0s\n');
    const error = await validate(text).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).context.exitCode).toBe(1);
    expect((error as CommandError).context.stderrTail).toContain('unknown field "timeouts"');
  });

  it('rejects v1beta3 map-style extraArgs in a v1beta4 config', async () => {
    const text = initFor('1.31.2').replace(
      /kubeletExtraArgs:\n(\s+- name: .*\n\s+value: .*\n)+/,
      'kubeletExtraArgs:\n    node-ip: 10.10.0.11\n',
    );
    expect(text).toContain('node-ip: 10.10.0.11');
    const error = (await validate(text).catch((e: unknown) => e)) as CommandError;
    expect(error.context.stderrTail).toContain(
      'cannot unmarshal object into Go struct field NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs of type []v1beta4.Arg',
    );
  });

  it('rejects a v1beta4 config where kubeadm is older than 1.31', async () => {
    const error = (await validate(initFor('1.31.2'), { PKE_STANDIN_KUBEADM_VERSION: 'v1.30.4' }).catch((e: unknown) => e)) as CommandError;
    expect(error.context.stderrTail).toContain('no kind "InitConfiguration" is registered for version "kubeadm.k8s.io/v1beta4"');
  });
});
