import { isIP } from 'node:net';
import { stringify } from 'yaml';
import { kubernetesMinor, supportedKubernetesMinor } from '../config/kubernetes-version.ts';
import type { Taint } from '../config/node-labels.ts';
import type { AgentConfig } from '../config/schema.ts';
import type { RegisterOutput } from '../journal/phase-outputs.ts';

/**
 * kubeadm's config files, rendered for the cluster's Kubernetes version: `kubeadm.k8s.io/v1beta3`
 * for 1.22 to 1.30, `v1beta4` from 1.31 (extra arguments as name/value lists, timeouts in one
 * `timeouts` block). Pure functions: the phases write and run what these return.
 */

export const KUBEADM_V1BETA3 = 'kubeadm.k8s.io/v1beta3';
export const KUBEADM_V1BETA4 = 'kubeadm.k8s.io/v1beta4';
export type KubeadmApiVersion = typeof KUBEADM_V1BETA3 | typeof KUBEADM_V1BETA4;

const KUBELET_CONFIG_API = 'kubelet.config.k8s.io/v1beta1';
const CRI_SOCKET = 'unix:///run/containerd/containerd.sock';

/** kubeadm's own defaults, written out so that one place says how long kubeadm may wait. */
const TIMEOUTS = { controlPlane: '4m0s', kubelet: '4m0s', discovery: '5m0s', tlsBootstrap: '5m0s' } as const;

export interface InitConfigInput {
  config: AgentConfig;
  node: RegisterOutput;
  /** The init grant's token, placed in the cluster by kubeadm; it must outlive the bootstrap. */
  bootstrapToken: { token: string; ttlSeconds: number };
}

export interface JoinConfigInput {
  config: AgentConfig;
  node: RegisterOutput;
  /** From the join grant: where to discover the cluster and how to trust it. */
  discovery: { endpoint: string; token: string; caCertHash: string };
}

export function kubeadmApiVersion(kubernetesVersion: string): KubeadmApiVersion {
  return supportedKubernetesMinor(kubernetesVersion) >= 31 ? KUBEADM_V1BETA4 : KUBEADM_V1BETA3;
}

/** InitConfiguration, ClusterConfiguration and KubeletConfiguration for `kubeadm init` on the leader. */
export function renderInitConfig({ config, node, bootstrapToken }: InitConfigInput): string {
  const apiVersion = kubeadmApiVersion(config.kubernetes.version);
  const v1beta4 = apiVersion === KUBEADM_V1BETA4;
  const { vip, port } = config.controlPlaneEndpoint;

  const init: Record<string, unknown> = {
    apiVersion,
    kind: 'InitConfiguration',
    bootstrapTokens: [
      {
        token: bootstrapToken.token,
        description: 'pke-agent bootstrap token',
        ttl: `${Math.ceil(bootstrapToken.ttlSeconds)}s`,
        usages: ['signing', 'authentication'],
        groups: ['system:bootstrappers:kubeadm:default-node-token'],
      },
    ],
    nodeRegistration: nodeRegistration(config, node, v1beta4),
    localAPIEndpoint: { advertiseAddress: node.primaryIp, bindPort: port },
  };
  if (v1beta4) init.timeouts = { controlPlaneComponentHealthCheck: TIMEOUTS.controlPlane, kubeletHealthCheck: TIMEOUTS.kubelet };
  const { kubeProxy, coreDns } = config.addons;
  // v1beta4 says so in ClusterConfiguration (and kubeadm then neither pulls their images nor
  // upgrades them); v1beta3 can only skip the phases that install them.
  const skippedAddons = [...(kubeProxy ? [] : ['addon/kube-proxy']), ...(coreDns ? [] : ['addon/coredns'])];
  if (!v1beta4 && skippedAddons.length > 0) init.skipPhases = skippedAddons;

  const apiServer: Record<string, unknown> = {
    certSANs: unique([vip, node.nodeName, node.primaryIp, ...node.ips.filter((ip) => isIP(ip) !== 0)]),
  };
  if (!v1beta4) apiServer.timeoutForControlPlane = TIMEOUTS.controlPlane;
  const cluster: Record<string, unknown> = {
    apiVersion,
    kind: 'ClusterConfiguration',
    clusterName: config.cluster.name,
    kubernetesVersion: `v${config.kubernetes.version.replace(/^v/, '')}`,
    controlPlaneEndpoint: `${vip}:${port}`,
    networking: { podSubnet: config.kubernetes.podCidr, serviceSubnet: config.kubernetes.serviceCidr },
    apiServer,
  };
  if (config.kubernetes.imageRepository) cluster.imageRepository = config.kubernetes.imageRepository;
  if (v1beta4 && !kubeProxy) cluster.proxy = { disabled: true };
  if (v1beta4 && !coreDns) cluster.dns = { disabled: true };
  return documents(init, cluster, kubeletConfiguration(config));
}

/**
 * JoinConfiguration for `kubeadm join`; control-plane nodes get the `controlPlane` block. The
 * kubelet's configuration comes from the cluster on join, so no KubeletConfiguration here.
 */
export function renderJoinConfig({ config, node, discovery }: JoinConfigInput): string {
  const apiVersion = kubeadmApiVersion(config.kubernetes.version);
  const v1beta4 = apiVersion === KUBEADM_V1BETA4;
  const bootstrapToken = { apiServerEndpoint: discovery.endpoint, token: discovery.token, caCertHashes: [discovery.caCertHash] };
  const join: Record<string, unknown> = {
    apiVersion,
    kind: 'JoinConfiguration',
    nodeRegistration: nodeRegistration(config, node, v1beta4),
    discovery: v1beta4 ? { bootstrapToken } : { bootstrapToken, timeout: TIMEOUTS.discovery },
  };
  if (config.role === 'master') {
    join.controlPlane = { localAPIEndpoint: { advertiseAddress: node.primaryIp, bindPort: config.controlPlaneEndpoint.port } };
  }
  if (v1beta4) {
    join.timeouts = {
      discovery: TIMEOUTS.discovery,
      tlsBootstrap: TIMEOUTS.tlsBootstrap,
      kubeletHealthCheck: TIMEOUTS.kubelet,
      ...(config.role === 'master' ? { controlPlaneComponentHealthCheck: TIMEOUTS.controlPlane } : {}),
    };
  }
  return documents(join);
}

/**
 * The kubelets' configuration, which kubeadm init stores in the cluster for every node. The
 * cgroup driver is the site's (containerd's runc uses the same one); `failCgroupV1` exists
 * from 1.31 and refuses cgroup v1 hosts from 1.35.
 */
function kubeletConfiguration(config: AgentConfig): Record<string, unknown> {
  const kubelet: Record<string, unknown> = {
    apiVersion: KUBELET_CONFIG_API,
    kind: 'KubeletConfiguration',
    cgroupDriver: config.kubernetes.cgroupDriver,
  };
  if (config.kubernetes.allowCgroupV1 && kubernetesMinor(config.kubernetes.version) >= 31) kubelet.failCgroupV1 = false;
  return kubelet;
}

function nodeRegistration(config: AgentConfig, node: RegisterOutput, v1beta4: boolean): Record<string, unknown> {
  // node-ip pins the kubelet to the VIP's network on VMs with several NICs.
  const args: [string, string][] = [['node-ip', node.primaryIp]];
  const labels = Object.entries(config.labels).sort(([a], [b]) => a.localeCompare(b));
  if (labels.length > 0) args.push(['node-labels', labels.map(([key, value]) => `${key}=${value}`).join(',')]);
  // With the vSphere CPI, the node's providerID is vsphere://<BIOS UUID>; the CSI driver finds the VM by it.
  if (config.kubernetes.cloudProvider) {
    args.push(['cloud-provider', config.kubernetes.cloudProvider]);
    if (node.biosUuid) args.push(['provider-id', `vsphere://${node.biosUuid}`]);
  }
  return {
    name: node.nodeName,
    criSocket: CRI_SOCKET,
    // kubeadm adds its default control-plane taint only when `taints` is absent; we list it ourselves.
    taints: nodeTaints(config),
    kubeletExtraArgs: v1beta4 ? args.map(([name, value]) => ({ name, value })) : Object.fromEntries(args),
    // kubeadm's system verification fails every cgroup v1 host for kubelets from 1.35, and says to skip it there.
    ...(config.kubernetes.allowCgroupV1 ? { ignorePreflightErrors: ['SystemVerification'] } : {}),
  };
}

/** The configured taints, after the control-plane taint kubeadm would set for this version. */
export function nodeTaints(config: AgentConfig): Taint[] {
  const taints: Taint[] = [];
  if (config.role === 'master') {
    const minor = kubernetesMinor(config.kubernetes.version);
    // 1.24 moved from the `master` taint to `control-plane`, setting both for one release.
    if (minor <= 24) taints.push({ key: 'node-role.kubernetes.io/master', effect: 'NoSchedule' });
    if (minor >= 24) taints.push({ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' });
  }
  for (const taint of config.taints) {
    if (!taints.some((t) => t.key === taint.key && t.effect === taint.effect)) taints.push(taint);
  }
  return taints.map(({ key, value, effect }) => (value === undefined ? { key, effect } : { key, value, effect }));
}

function documents(...docs: object[]): string {
  return docs.map((doc) => stringify(doc, { lineWidth: 0 })).join('---\n');
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
