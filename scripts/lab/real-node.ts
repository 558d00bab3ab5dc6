// A lab VM of the real Kubernetes tier as it first boots: a clone of the template (packer/) with
// what the image build puts there for a site like this machine, where PID 1 is not systemd and
// the cgroup v1 hierarchies are mounted. containerd (Debian's) and the kubelet (built from
// k8s.io/kubernetes) are real; the images the template would carry for an air-gapped site are
// imported into containerd; pod networking is a static bridge config of Debian's CNI plugins
// (the cluster's CNI add-on is `none`). Only systemctl stands in: there is no systemd here.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { archivesFor } from '../kubernetes/images.ts';
import { etcdBinDir, kubernetesBinDir, type KubernetesRelease } from '../kubernetes/releases.ts';
import { STATE_DIR, SYSTEM_PATH_DIRS } from '../../test/standins/standin-common.ts';
import type { LabHost } from './network.ts';
import type { LabVm } from './vm.ts';

/** The stand-ins a real-tier VM still needs: systemctl (no systemd as PID 1 here). */
const REAL_TIER_STANDINS = ['systemctl'];
/** Debian's containernetworking-plugins. */
const CNI_BIN_DIR = '/usr/lib/cni';

/** The cluster settings this machine needs, as an operator of such a site would give them. */
export function realTierClusterSpec(): Record<string, unknown> {
  return {
    cgroupDriver: 'cgroupfs',
    allowCgroupV1: true,
    // kube-proxy's and CoreDNS's images are not built here; the bridge CNI is the lab's own.
    addons: { cni: 'none', kubeProxy: false, coreDns: false },
  };
}

/** The services a real-tier VM runs (the systemctl stand-in really runs them), in boot order. */
const REAL_TIER_UNITS = ['containerd', 'kubelet', 'keepalived'];

/** A directory holding only the stand-ins the real tier uses, for the front of PATH; made once per lab. */
export function makeRealTierStandinDir(workDir: string, standinBin: string): string {
  const dir = path.join(workDir, 'real-tier-bin');
  mkdirSync(dir, { recursive: true });
  for (const tool of REAL_TIER_STANDINS) symlinkSync(path.join(standinBin, tool), path.join(dir, tool));
  return dir;
}

/** What a real-tier VM's processes see: its own `/` (no scratch root), the real binaries first on PATH. */
export function realTierEnvironment(release: KubernetesRelease, standinDir: string): Record<string, string> {
  return {
    PATH: realTierPath(release, standinDir, path.dirname(process.execPath)),
    HOME: '/root',
    PKE_STANDIN_SYSTEMD_RUN: REAL_TIER_UNITS.join(' '),
  };
}

/**
 * Where a real-tier VM has kubeadm, kubelet and kubectl installed (the image's /usr/bin, which the
 * VMs share with this machine): links into the release's build, on the VM's own disk, so that an
 * upgrade replaces them on that VM alone.
 */
const INSTALLED_BIN_DIR = '/opt/pke/bin';
const INSTALLED_COMMANDS = ['kubeadm', 'kubelet', 'kubectl'];

/** PATH inside a real-tier VM: its installed Kubernetes commands, etcdctl, the stand-ins, then the system. */
function realTierPath(release: KubernetesRelease, standinDir: string, nodeDir: string): string {
  return [INSTALLED_BIN_DIR, etcdBinDir(release.etcd), standinDir, nodeDir, ...SYSTEM_PATH_DIRS].join(':');
}

/** Shell lines that link each installed command to the release's build. */
function installCommands(release: KubernetesRelease): string[] {
  return [
    `mkdir -p ${INSTALLED_BIN_DIR}`,
    ...INSTALLED_COMMANDS.map((c) => `ln -sfn ${path.join(kubernetesBinDir(release.version), c)} ${INSTALLED_BIN_DIR}/${c}`),
  ];
}

/**
 * Stages a newer release on a VM as the image (or the operator) would before an upgrade:
 * /opt/pke/kubernetes/vVERSION/bin holds its kubeadm, kubelet and kubectl, images/ the archives
 * of its images for the node's role (agent/kube/staged-release.ts reads both).
 */
export async function stageRelease(
  vm: LabVm,
  role: 'master' | 'worker',
  release: KubernetesRelease,
  env: Record<string, string>,
): Promise<void> {
  const dir = `/opt/pke/kubernetes/v${release.version}`;
  const script = [
    'set -e',
    `mkdir -p ${dir}/bin ${dir}/images`,
    ...INSTALLED_COMMANDS.map((c) => `ln -sfn ${path.join(kubernetesBinDir(release.version), c)} ${dir}/bin/${c}`),
    ...archivesFor(release, role).map((archive) => `ln -sfn ${archive} ${dir}/images/${path.basename(archive)}`),
  ].join('\n');
  const result = await vm.run('sh', ['-c', script], { env, reject: false, all: true });
  if (result.exitCode !== 0)
    throw new Error(`VM ${vm.spec.name}: staging v${release.version} failed (exit ${result.exitCode}): ${String(result.all).trim()}`);
}

export interface CloneInput {
  vm: LabVm;
  role: 'master' | 'worker';
  host: LabHost;
  /** Every host of the lab network, for /etc/hosts (there is no DNS server here). */
  hosts: LabHost[];
  /** This node's slice of the pod CIDR for the bridge plugin's host-local IPAM. */
  podSubnet: string;
  release: KubernetesRelease;
  env: Record<string, string>;
}

/**
 * Writes what the template holds and starts what it boots with: containerd with its images, the
 * kubelet enabled (kubeadm starts it). Fails naming the step and what it printed.
 */
export async function bootClone(input: CloneInput): Promise<void> {
  const { vm, host, release } = input;
  const staging = path.join(vm.spec.dir, 'template');
  mkdirSync(staging, { recursive: true });
  const stage = (name: string, text: string) => {
    writeFileSync(path.join(staging, name), text);
    return path.join(staging, name);
  };
  const hosts = stage('hosts', ['127.0.0.1 localhost', ...input.hosts.map((h) => `${h.ip} ${h.name}`), ''].join('\n'));
  // No resolver answers here; lookups fail at once on loopback instead of leaving the lab.
  const resolv = stage('resolv.conf', 'nameserver 127.0.0.1\n');
  const containerd = stage('config.toml', containerdConfig(release));
  const cni = stage('10-pke-lab.conflist', bridgeConflist(input.podSubnet));
  // The site's kubelet arguments (/etc/default/kubelet, read by kubeadm's kubelet unit): each VM's
  // pods go below its own cgroup, as pods of different machines would.
  const kubeletDefaults = stage('kubelet', `KUBELET_EXTRA_ARGS=--cgroup-root=${vm.kubeletCgroupRoot}\n`);
  const imports = archivesFor(release, input.role).map((archive) => `ctr -n k8s.io images import ${archive} >/dev/null`);
  const script = [
    'set -e',
    `cp ${hosts} /etc/hosts`,
    `cp ${resolv} /etc/resolv.conf`,
    `echo ${host.name} > /etc/hostname`,
    'mkdir -p /etc/containerd /etc/cni/net.d /etc/default /var/lib/dbus',
    // Each clone its own machine id (the template's is emptied by the image build).
    `echo ${randomUUID().replaceAll('-', '')} | tee /etc/machine-id > /var/lib/dbus/machine-id`,
    `cp ${containerd} /etc/containerd/config.toml`,
    `cp ${cni} /etc/cni/net.d/`,
    `cp ${kubeletDefaults} /etc/default/kubelet`,
    ...installCommands(release),
    'systemctl enable --now containerd',
    'systemctl enable kubelet',
    'for i in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done',
    ...imports,
  ].join('\n');
  const result = await input.vm.run('sh', ['-c', script], { env: input.env, reject: false, all: true });
  if (result.exitCode !== 0) {
    throw new Error(
      `VM ${host.name}: booting the template clone failed (exit ${result.exitCode}): ${String(result.all).trim().slice(-800)}`,
    );
  }
}

/**
 * A powered-off VM booting from its disk: the units enabled on it start, as systemd would start
 * them. Which units were active is runtime state, gone with the power.
 */
export async function bootFromDisk(vm: LabVm, env: Record<string, string>): Promise<void> {
  const boot = [
    `rm -f ${STATE_DIR}/systemd/*.active`,
    `for unit in ${REAL_TIER_UNITS.join(' ')}; do if systemctl is-enabled -q $unit; then systemctl start $unit; fi; done`,
  ].join('\n');
  const result = await vm.run('sh', ['-c', boot], { env, reject: false, all: true });
  if (result.exitCode !== 0) {
    throw new Error(`VM ${vm.spec.name}: booting from its disk failed (exit ${result.exitCode}): ${String(result.all).trim()}`);
  }
}

/**
 * The template's containerd config for this site: cgroupfs like the kubelet, the pause image kubeadm
 * expects, Debian's CNI plugins, and container OOM scores no lower than containerd's own, since
 * this machine's root lacks CAP_SYS_RESOURCE and runc fails to set a negative one (the kubelet
 * asks -998 for every sandbox).
 */
function containerdConfig(release: KubernetesRelease): string {
  return `version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:${release.pause}"
  restrict_oom_score_adj = true

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${CNI_BIN_DIR}"
  conf_dir = "/etc/cni/net.d"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
`;
}

function bridgeConflist(subnet: string): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'pke-lab',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: true,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;
}
