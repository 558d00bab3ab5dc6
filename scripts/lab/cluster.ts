// A whole cluster on one machine: a real controller and real agents (the built executable), one
// network namespace per VM, real keepalived on the control plane (started, reloaded and stopped
// by the systemctl stand-in, as systemd would). Two tiers: `real`, where each VM also has its own
// mount, UTS and cgroup (vm.ts) and runs real containerd, kubelet, kubeadm, etcd, control plane
// and kubectl built from their Go modules (real-node.ts); and `standins`, where kubeadm, the
// kubelet, kubectl and the API server are acted out by test/standins/ against a scratch root.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type Options, type ResultPromise } from 'execa';
import {
  KERNEL_MODULES,
  MODULES_LOAD_FILE,
  MODULES_LOAD_TEXT,
  SYSCTL_FILE,
  SYSCTL_TEXT,
  SYSCTLS,
  sysctlPath,
} from '../../agent/node/kernel.ts';
import { STATE_DIR, SYSTEM_PATH_DIRS } from '../../test/standins/standin-common.ts';
import type { KubernetesRelease } from '../kubernetes/releases.ts';
import { startHaControllers, type HaControllers } from './ha.ts';
import { addHost, createNetwork, holderOf, removeHost, removeNamespaces, type LabHost, type LabNetwork } from './network.ts';
import { type LabVsphere, startLabVsphere } from './vsphere.ts';
import { bootClone, bootFromDisk, makeRealTierStandinDir, realTierClusterSpec, realTierEnvironment, stageRelease } from './real-node.ts';
import { LabVm, processesNamed, removeLeftoverVms } from './vm.ts';

export const REPO = path.resolve(import.meta.dirname, '../..');
const STANDIN_BIN = path.join(REPO, 'test/standins/bin');
const VMWARE_STANDINS = path.join(REPO, 'test/standins/vmware');
const CONTROLLER_PORT = 9443;

export interface LabOptions {
  /** Prefix of every namespace this lab makes; leftovers with it are removed first. */
  prefix: string;
  workDir: string;
  executable: string;
  masters: number;
  workers: number;
  kubernetesVersion?: string;
  leaseTtl?: string;
  /** Extra environment for every node's bootstrap (stand-in knobs). */
  nodeEnv?: Record<string, string>;
  /** The cluster's VIP; default: .100 of the lab network. */
  vip?: string;
  /** Lifetime of each join token the controller mints, in seconds. */
  bootstrapTokenTtlSeconds?: number;
  /**
   * The real tier: the release whose binaries (scripts/kubernetes/build.ts) every VM runs. Absent:
   * the stand-in tier.
   */
  real?: KubernetesRelease;
  /**
   * Real tier: VMs cloned from a template of another release than `real`, by node name (a
   * rolling replacement brings the newer release on new VMs).
   */
  nodeReleases?: ReadonlyMap<string, KubernetesRelease>;
  /** Three controller replicas on a three-member etcd cluster (scripts/lab/ha.ts) instead of one controller. */
  ha?: boolean;
  /**
   * The controller provisions every VM on a vCenter simulator in the controller's namespace, and
   * the lab boots a VM for each one the simulator reports powered on, its guestinfo read from
   * the VM's ExtraConfig through the simulator's API (stand-in tier only). `masters`/`workers`
   * are the pool sizes the cluster is created with.
   */
  vsphere?: boolean;
}

export interface LabNode {
  name: string;
  role: 'master' | 'worker';
  host: LabHost;
  root: string;
  guestinfo: Record<string, string>;
  bootstrap?: ResultPromise;
  /** The VM's own namespaces and cgroup (real tier only). */
  vm?: LabVm;
  /** The simulator's VM this node boots (--vsphere): its managed object id and BIOS UUID. */
  vsphereVm?: { moref: string; biosUuid: string };
}

/** One line of an agent's --json log. */
export interface AgentLogLine {
  time: string;
  level: string;
  event: string;
  phase?: string;
  error?: string;
  [field: string]: unknown;
}

export class Lab {
  readonly options: LabOptions;
  readonly network: LabNetwork;
  readonly nodes: LabNode[];
  readonly clusterName = 'lab';
  private controller: ResultPromise | undefined;
  private readonly controllerHost: LabHost;
  private ha: HaControllers | undefined;
  /** With ha: the replica the admin's CLI talks to (the first one still running). */
  private cliReplica = 0;
  private templateContainerdConfig: string | undefined;
  private realTierBin: string | undefined;
  /** The vCenter simulator (--vsphere). */
  vsphere: LabVsphere | undefined;

  private constructor(options: LabOptions, network: LabNetwork, nodes: LabNode[]) {
    this.options = options;
    this.network = network;
    this.nodes = nodes;
    this.controllerHost = network.hosts.find((h) => h.name === 'ctl')!;
  }

  get controllerUrl(): string {
    return this.ha?.replicas[this.cliReplica]?.url ?? `https://${this.controllerHost.ip}:${CONTROLLER_PORT}`;
  }

  get dataDir(): string {
    return this.ha?.replicas[this.cliReplica]?.dataDir ?? path.join(this.options.workDir, 'controller');
  }

  /** With ha: every replica's URL; else the one controller's. */
  get controllerUrls(): string[] {
    return this.ha?.replicas.map((r) => r.url) ?? [this.controllerUrl];
  }

  /** Removes leftovers of an earlier run with the same prefix, then builds the network and the controller. */
  static async create(options: LabOptions, onNote: (text: string) => void = () => {}): Promise<Lab> {
    const leftoverVms = await removeLeftoverVms(options.prefix);
    const leftovers = [...leftoverVms, ...(await removeNamespaces(options.prefix))];
    if (leftovers.length > 0) onNote(`removed leftovers of an earlier run: ${leftovers.join(', ')}`);
    rmSync(options.workDir, { recursive: true, force: true });
    mkdirSync(options.workDir, { recursive: true });
    if (options.vsphere && options.real) throw new Error('--vsphere runs on the stand-in tier only');
    if (options.nodeReleases && !options.real) throw new Error('nodeReleases is for the real tier');

    // With --vsphere the VMs are whatever the controller provisions: they join the network as they appear.
    const names = [
      'ctl',
      ...(options.ha ? ['ctl2', 'ctl3'] : []),
      ...(options.vsphere ? [] : [...range(options.masters).map((i) => `m${i + 1}`), ...range(options.workers).map((i) => `w${i + 1}`)]),
    ];
    const network = await createNetwork(options.prefix, names);
    const nodes: LabNode[] = network.hosts
      .filter((h) => !h.name.startsWith('ctl'))
      .map((host) => ({
        name: host.name,
        role: host.name.startsWith('m') ? 'master' : 'worker',
        host,
        root: path.join(options.workDir, 'nodes', host.name),
        guestinfo: {},
      }));
    const lab = new Lab(options, network, nodes);
    try {
      if (options.vsphere) lab.vsphere = await startLabVsphere(options.workDir, lab.controllerHost);
      await lab.startController();
      await lab.createCluster();
      for (const node of nodes) await lab.prepareVm(node);
    } catch (error) {
      await lab.destroy({ keepFiles: true });
      throw error;
    }
    return lab;
  }

  get tier(): 'real' | 'standins' {
    return this.options.real ? 'real' : 'standins';
  }

  /** `pke-agent controller ARGS` in the controller's namespace. */
  private onControllerHost<O extends Options>(args: string[], options: O) {
    const host = this.ha?.replicas[this.cliReplica]?.host ?? this.controllerHost;
    return execa('ip', ['netns', 'exec', host.namespace, this.options.executable, 'controller', ...args], options);
  }

  /** Runs a pke-agent command inside the controller's namespace (the admin's machine). */
  async controllerCli(args: string[]): Promise<string> {
    const result = await this.controllerRun(args);
    if (result.exitCode !== 0) throw new Error(`pke-agent controller ${args.join(' ')} exited ${result.exitCode}: ${result.stderr.trim()}`);
    return result.stdout;
  }

  /** `pke-agent controller ARGS` on the controller's host, whatever its exit code, with its output and log. */
  async controllerRun(args: string[]): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
    const result = await this.onControllerHost([...args, '--url', this.controllerUrl, '--data-dir', this.dataDir], { reject: false });
    return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
  }

  async startController(): Promise<void> {
    if (this.options.ha) {
      const hosts = this.network.hosts.filter((h) => h.name.startsWith('ctl'));
      this.ha = await startHaControllers({
        hosts,
        workDir: this.options.workDir,
        executable: this.options.executable,
        port: CONTROLLER_PORT,
      });
      return;
    }
    const log = createWriteStream(path.join(this.options.workDir, 'controller.log'), { flags: 'a' });
    const child = this.onControllerHost(['serve', '--data-dir', this.dataDir, '--listen', `${this.controllerHost.ip}:${CONTROLLER_PORT}`], {
      reject: false,
      buffer: false,
      stdin: 'ignore',
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.controller = child;
    const tokenFile = path.join(this.dataDir, 'admin.token');
    for (let i = 0; i < 150; i++) {
      if (existsSync(tokenFile)) {
        const probe = await execa(
          'ip',
          [
            'netns',
            'exec',
            this.controllerHost.namespace,
            'curl',
            '-sk',
            '-o',
            '/dev/null',
            '-w',
            '%{http_code}',
            `${this.controllerUrl}/livez`,
          ],
          { reject: false },
        );
        if (String(probe.stdout) !== '000') return;
      }
      if (child.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`the controller did not start; see ${path.join(this.options.workDir, 'controller.log')}`);
  }

  /**
   * With ha: SIGKILLs one replica (a crashed controller host); the CLI moves to the next
   * replica still running. Returns the replica's name.
   */
  async killReplica(index: number): Promise<string> {
    const replica = this.ha?.replicas[index];
    if (!replica?.child) throw new Error(`no running controller replica ${index}`);
    replica.child.kill('SIGKILL');
    await replica.child.catch(() => undefined);
    replica.child = undefined;
    const live = this.ha?.replicas.findIndex((r) => r.child !== undefined) ?? -1;
    if (live >= 0) this.cliReplica = live;
    return replica.host.name;
  }

  /** With ha: `controller ARGS` run against each replica still running, by replica name. */
  async eachReplicaCli(args: string[]): Promise<{ replica: string; output: string }[]> {
    const results: { replica: string; output: string }[] = [];
    const current = this.cliReplica;
    try {
      for (const [index, replica] of (this.ha?.replicas ?? []).entries()) {
        if (!replica.child) continue;
        this.cliReplica = index;
        results.push({ replica: replica.host.name, output: await this.controllerCli(args) });
      }
    } finally {
      this.cliReplica = current;
    }
    return results;
  }

  /** Stops the controller process (SIGTERM, or SIGKILL to act out a crash). */
  async stopController(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.controller;
    if (!child) return;
    // `ip netns exec` execs the program, so the child's PID is the controller's.
    child.kill(signal);
    await child.catch(() => undefined);
    this.controller = undefined;
  }

  private async createCluster(): Promise<void> {
    if (this.vsphere) {
      await this.createProvisionedCluster(this.vsphere);
      return;
    }
    const version = this.options.real?.version ?? this.options.kubernetesVersion ?? '1.31.2';
    const args = [
      'cluster',
      'create',
      '--name',
      this.clusterName,
      '--kubernetes-version',
      version,
      '--vip',
      this.options.vip ?? this.network.vip,
      '--control-plane-nodes',
      String(this.options.masters),
      '--pool',
      'workers',
    ];
    if (this.options.leaseTtl) args.push('--lease-ttl', this.options.leaseTtl);
    const spec: Record<string, unknown> = this.options.real ? realTierClusterSpec() : {};
    if (this.options.bootstrapTokenTtlSeconds !== undefined) spec.bootstrapTokenTtlSeconds = this.options.bootstrapTokenTtlSeconds;
    if (Object.keys(spec).length > 0) {
      const file = path.join(this.options.workDir, 'cluster-spec.json');
      writeFileSync(file, JSON.stringify(spec));
      args.push('--file', file);
    }
    await this.controllerCli(args);
  }

  /** `cluster create --provision` with the simulator's inventory as placement, then `cluster vsphere`. */
  private async createProvisionedCluster(vsphere: LabVsphere): Promise<void> {
    const placement = { template: 'DC0_H0_VM0', resourcePool: 'DC0_C0', datastore: 'LocalDS_0', cpus: 2, memoryMiB: 2048 };
    const spec: Record<string, unknown> = {
      name: this.clusterName,
      kubernetesVersion: this.options.kubernetesVersion ?? '1.31.2',
      controlPlaneEndpoint: { vip: this.options.vip ?? this.network.vip },
      controlPlaneNodes: this.options.masters,
      controlPlanePlacement: placement,
      pools: [{ name: 'workers', size: this.options.workers, placement }],
    };
    if (this.options.bootstrapTokenTtlSeconds !== undefined) spec.bootstrapTokenTtlSeconds = this.options.bootstrapTokenTtlSeconds;
    const file = path.join(this.options.workDir, 'cluster-spec.json');
    writeFileSync(file, JSON.stringify(spec));
    await this.controllerCli([
      'cluster',
      'create',
      '--file',
      file,
      '--provision',
      ...(this.options.leaseTtl ? ['--lease-ttl', this.options.leaseTtl] : []),
    ]);
    await this.controllerCli([
      'cluster',
      'vsphere',
      '--cluster',
      this.clusterName,
      '--server',
      vsphere.host,
      '--port',
      String(vsphere.port),
      '--username',
      vsphere.username,
      '--password-file',
      vsphere.passwordFile,
      '--vcenter-ca-file',
      vsphere.caFile,
      '--datacenter',
      'DC0',
    ]);
  }

  /**
   * Brings the lab's VMs in line with the simulator: a VM it reports powered on that has no
   * namespace yet gets one (its disk the template's clone, its BIOS UUID the simulator's, its IP
   * reported back as VMware Tools would) and is booted; a booted VM the simulator no longer has
   * (destroyed, or replaced by a VM of the same name and a new moref) loses its namespace, every
   * process in it and its disk, before any new VM boots. Answers the nodes it booted and removed.
   */
  async syncVsphereVms(boot: (node: LabNode) => void): Promise<{ booted: LabNode[]; removed: string[] }> {
    const vsphere = this.vsphere;
    if (!vsphere) throw new Error('syncVsphereVms: the lab was made without --vsphere');
    const powered = (await vsphere.list()).filter((vm) => vm.name.startsWith(`${this.clusterName}-`));
    // A lab VM is its vSphere VM: name and moref. A replaced VM keeps its name and gets a new moref,
    // so the old one goes first (its namespace, its bootstrap awaited, its disk), then the new one boots.
    const sameVm = (node: LabNode, vm: { name: string; moref: string }) => node.name === vm.name && node.vsphereVm?.moref === vm.moref;
    const removed: string[] = [];
    for (const node of [...this.nodes]) {
      if (!node.vsphereVm || powered.some((vm) => sameVm(node, vm))) continue;
      await removeHost(this.network, node.host);
      await node.bootstrap?.catch(() => undefined);
      rmSync(node.root, { recursive: true, force: true });
      this.nodes.splice(this.nodes.indexOf(node), 1);
      removed.push(node.name);
    }
    const booted: LabNode[] = [];
    for (const vm of powered) {
      if (this.nodes.some((n) => n.name === vm.name)) continue;
      const host = await addHost(this.network, vm.name);
      const node: LabNode = {
        name: vm.name,
        role: vm.name.startsWith(`${this.clusterName}-cp-`) ? 'master' : 'worker',
        host,
        root: path.join(this.options.workDir, 'nodes', vm.name),
        guestinfo: {},
        vsphereVm: { moref: vm.moref, biosUuid: vm.biosUuid },
      };
      this.writeStandinClone(node, vm.biosUuid);
      this.nodes.push(node);
      const env = this.nodeEnvironment(node);
      // What VMware Tools and cloud-init's VMware datasource do at boot, through the VM's guestinfo.
      for (const args of [['set-ip', host.ip], ['cloud-init']]) {
        const result = await this.runOn(node, vsphere.guestScript, args, { env });
        if (result.exitCode !== 0)
          throw new Error(`VM ${vm.name}: vsphere-guest ${args[0]} exited ${result.exitCode}: ${String(result.stderr).trim()}`);
      }
      boot(node);
      booted.push(node);
    }
    return { booted, removed };
  }

  /** A VM's disk (its root) and its guestinfo, exactly as `controller node-config` renders it. */
  private async prepareVm(node: LabNode): Promise<void> {
    const release = this.releaseOf(node);
    if (release) await this.bootRealVm(node, release);
    else this.writeStandinClone(node);
    const args = ['node-config', '--cluster', this.clusterName, '--name', node.name, '--role', node.role, '--format', 'json'];
    if (node.role === 'worker') args.push('--pool', 'workers');
    node.guestinfo = JSON.parse(await this.controllerCli(args));
  }

  /**
   * A power cut on a real-tier VM: every process it ran is killed and its /run is gone; its disk
   * (the overlays' upper directories) stays. The VIP, if it held it, goes with it.
   */
  async powerOff(node: LabNode): Promise<void> {
    if (!node.vm) throw new Error(`VM ${node.name}: powerOff is for the real tier`);
    await node.vm.destroy();
    node.vm = undefined;
  }

  /** Boots a powered-off real-tier VM from its disk: the units enabled on it start, as systemd would start them. */
  async powerOn(node: LabNode): Promise<void> {
    if (node.vm) return;
    node.vm = await LabVm.boot(this.vmSpec(node));
    await bootFromDisk(node.vm, this.nodeEnvironment(node));
  }

  private vmSpec(node: LabNode) {
    return { name: node.name, namespace: node.host.namespace, dir: node.root, cgroup: `${this.options.prefix}${node.name}` };
  }

  private async bootRealVm(node: LabNode, release: KubernetesRelease): Promise<void> {
    node.vm = await LabVm.boot(this.vmSpec(node));
    const index = this.nodes.indexOf(node);
    await bootClone({
      vm: node.vm,
      role: node.role,
      host: node.host,
      hosts: this.network.hosts,
      podSubnet: `10.244.${index}.0/24`,
      release,
      env: this.nodeEnvironment(node),
    });
  }

  private writeStandinClone(node: LabNode, biosUuid: string = randomUUID()): void {
    const write = (file: string, content: string) => {
      const full = path.join(node.root, file);
      mkdirSync(path.dirname(full), { recursive: true });
      writeFileSync(full, content);
    };
    write('sys/class/dmi/id/product_uuid', `${biosUuid}\n`);
    write('etc/hostname', `${node.name}\n`);
    write('etc/fstab', 'UUID=0a1b2c3d / ext4 errors=remount-ro 0 1\n/swapfile none swap sw 0 0\n');
    write(
      'proc/swaps',
      'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t2097148\t\t0\t\t-2\n',
    );
    // A clone of the template as it boots, in the stand-ins' terms. The image build (packer/scripts)
    // writes containerd's config (60-containerd.sh), enables containerd and the kubelet (60, 70),
    // and installs the kernel modules' and sysctls' files (50-kernel.sh), which the boot loads and applies.
    // Swap is the agent's to turn off.
    write(
      'etc/containerd/config.toml',
      (this.templateContainerdConfig ??= imageContainerdConfig(path.join(this.options.workDir, 'template'))),
    );
    for (const unit of ['containerd.service.enabled', 'containerd.service.active', 'kubelet.service.enabled'])
      write(`${STATE_DIR}/systemd/${unit}`, 'image\n');
    write(MODULES_LOAD_FILE, MODULES_LOAD_TEXT);
    write(SYSCTL_FILE, SYSCTL_TEXT);
    for (const module of KERNEL_MODULES) mkdirSync(path.join(node.root, 'sys/module', module), { recursive: true });
    for (const [key, value] of Object.entries(SYSCTLS)) write(sysctlPath(key), `${value}\n`);
    // Where the template's image build stages the add-ons (packer/scripts/75-addons.sh); the stand-in
    // tier's kubectl applies nothing, so the small trimmed fixture stands for the upstream bundles.
    cpSync(path.join(REPO, 'test/fixtures/addons-subset'), path.join(node.root, 'opt/pke/addons'), { recursive: true });
  }

  /** The environment a VM's bootstrap sees: guestinfo through the environment transport, stand-ins first on PATH. */
  nodeEnvironment(node: LabNode): Record<string, string> {
    const release = this.releaseOf(node);
    const tier = release ? realTierEnvironment(release, this.realTierStandinDir()) : this.standinEnvironment(node);
    if (node.vsphereVm && this.vsphere) {
      // No environment transport: the agent finds its config with vmware-rpctool, which asks vSphere.
      return {
        ...tier,
        ...this.vsphere.guestEnvironment(node.vsphereVm.moref),
        PATH: `${VMWARE_STANDINS}:${tier.PATH}`,
        PKE_GUESTINFO_DIR: path.join(node.root, 'var/lib/pke-lab-guestinfo'),
        ...this.options.nodeEnv,
      };
    }
    const env: Record<string, string> = { ...tier, VMX_GUESTINFO: '1', ...this.options.nodeEnv };
    for (const [key, value] of Object.entries(node.guestinfo)) env[`VMX_${key.toUpperCase().replace(/\./g, '_')}`] = value;
    return env;
  }

  /** The release a real-tier VM is cloned with; undefined on the stand-in tier. */
  releaseOf(node: LabNode): KubernetesRelease | undefined {
    return this.options.nodeReleases?.get(node.name) ?? this.options.real;
  }

  private realTierStandinDir(): string {
    return (this.realTierBin ??= makeRealTierStandinDir(this.options.workDir, STANDIN_BIN));
  }

  private standinEnvironment(node: LabNode): Record<string, string> {
    return {
      PATH: [STANDIN_BIN, path.dirname(process.execPath), ...SYSTEM_PATH_DIRS].join(':'),
      HOME: node.root,
      PKE_ROOT: node.root,
      // Where the kubeadm stand-in keeps what a real cluster would serve (cluster-info), shared by the VMs.
      PKE_STANDIN_CLUSTER_DIR: path.join(this.options.workDir, 'standin-cluster'),
      // systemctl runs real keepalived in the VM's namespace, as systemd would.
      PKE_STANDIN_SYSTEMD_RUN: 'keepalived',
    };
  }

  /** A command run on a VM: in its namespaces (and, on the real tier, its mounts and cgroup). */
  private runOn(
    node: LabNode,
    command: string,
    args: string[],
    options: { env: Record<string, string>; buffer?: boolean; cwd?: string },
  ): ResultPromise {
    if (node.vm) return node.vm.run(command, args, { ...options, reject: false, stdin: 'ignore' });
    if (this.options.real) throw new Error(`VM ${node.name} is powered off`);
    return execa('ip', ['netns', 'exec', node.host.namespace, command, ...args], {
      ...options,
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
    });
  }

  /** Powers the VM on: `pke-agent bootstrap --json` in its namespace; each log line goes to `onLine`. */
  startNode(node: LabNode, onLine: (line: AgentLogLine) => void = () => {}, extraEnv: Record<string, string> = {}): ResultPromise {
    return this.startAgent(node, ['bootstrap', '--json'], onLine, extraEnv);
  }

  /** Stages a newer release on a real-tier VM for an upgrade (`/opt/pke/kubernetes/vVERSION`). */
  async stageRelease(node: LabNode, release: KubernetesRelease): Promise<void> {
    if (!node.vm) throw new Error(`VM ${node.name}: stageRelease is for a running real-tier VM`);
    await stageRelease(node.vm, node.role, release, this.nodeEnvironment(node));
  }

  /** `pke-agent ARGS` in the VM (the bootstrap, an upgrade), its JSON log lines to `onLine` and the node's log file. */
  startAgent(
    node: LabNode,
    args: string[],
    onLine: (line: AgentLogLine) => void = () => {},
    extraEnv: Record<string, string> = {},
  ): ResultPromise {
    const logFile = createWriteStream(path.join(this.options.workDir, `${node.name}.log`), { flags: 'a' });
    const child = this.runOn(node, this.options.executable, args, {
      env: { ...this.nodeEnvironment(node), ...extraEnv },
      buffer: false,
      cwd: node.vm ? '/' : node.root,
    });
    let pending = '';
    const consume = (chunk: Buffer) => {
      logFile.write(chunk);
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        try {
          onLine(JSON.parse(line) as AgentLogLine);
        } catch {
          // a line that is not JSON (a crash trace): it is in the log file
        }
      }
    };
    child.stderr?.on('data', consume);
    child.stdout?.on('data', consume);
    node.bootstrap = child;
    return child;
  }

  /** Runs a pke-agent command in a VM's namespace, against its root, as that VM would. */
  async agentCommand(node: LabNode, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const result = await this.runOn(node, this.options.executable, args, { env: this.nodeEnvironment(node) });
    return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  }

  /** The real kubectl on a control-plane VM, with its admin.conf (real tier only). */
  async kubectl(node: LabNode, args: string[]): Promise<string> {
    const result = await this.runOn(node, 'kubectl', ['--kubeconfig', '/etc/kubernetes/admin.conf', ...args], {
      env: this.nodeEnvironment(node),
    });
    if (result.exitCode !== 0)
      throw new Error(`kubectl ${args.join(' ')} on ${node.name} exited ${result.exitCode}: ${String(result.stderr).trim()}`);
    return String(result.stdout);
  }

  /** `pke-agent status --json` for a node. */
  async nodeStatus(node: LabNode, probe = false): Promise<Record<string, unknown>> {
    return JSON.parse((await this.agentCommand(node, ['status', '--json', ...(probe ? ['--probe'] : [])])).stdout);
  }

  async clusterStatus(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.controllerCli(['status', '--cluster', this.clusterName, '--json']));
  }

  async vipHolder(): Promise<LabNode | undefined> {
    const host = await holderOf(this.network, this.network.vip);
    return this.nodes.find((n) => n.host === host);
  }

  /**
   * Stops the API server on a node: the real one's process (the kubelet starts it again after its
   * back-off, as on a real node), or the stand-in (its pid file is where kubeadm's stand-in left it).
   */
  stopApiServer(node: LabNode): boolean {
    if (node.vm) {
      const pids = processesNamed(node.vm.spec.cgroup, 'kube-apiserver');
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      return pids.length > 0;
    }
    const pidFile = path.join(node.root, 'run/pke-standins/apiserver.pid');
    if (!existsSync(pidFile)) return false;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    try {
      process.kill(pid, 'SIGTERM');
      return true;
    } catch {
      return false;
    }
  }

  /** Stops every process of the lab (by PID, namespace by namespace) and deletes the namespaces. */
  async destroy(options: { keepFiles?: boolean } = {}): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.vm?.destroy()));
    await removeNamespaces(this.options.prefix);
    await this.vsphere?.stop();
    const replicas = [...(this.ha?.replicas.map((r) => r.child) ?? []), ...(this.ha?.etcdMembers ?? [])];
    const children = [this.controller, ...replicas, ...this.nodes.map((n) => n.bootstrap)].filter(
      (c): c is ResultPromise => c !== undefined,
    );
    await Promise.all(children.map((c) => c.catch(() => undefined)));
    if (!options.keepFiles) rmSync(this.options.workDir, { recursive: true, force: true });
  }
}

/**
 * containerd's config as packer/scripts/60-containerd.sh writes it: the default, with the
 * systemd cgroup driver. `root` is the image build's scratch root (stand-ins never act on /).
 */
function imageContainerdConfig(root: string): string {
  const defaults = execFileSync(path.join(STANDIN_BIN, 'containerd'), ['config', 'default'], {
    env: { ...process.env, PKE_ROOT: root },
    encoding: 'utf8',
  });
  return defaults.replaceAll('SystemdCgroup = false', 'SystemdCgroup = true');
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
