// A lab VM for the real Kubernetes tier: the network namespace the lab made for it, plus its own
// mount and UTS namespaces, in which /etc, /var, /opt and /root are copy-on-write views of this
// machine's (overlayfs, the changes kept in the VM's directory), /run is empty, containerd's
// store is a plain directory (its overlayfs snapshotter cannot sit on an overlay), and sysfs is
// mounted afresh for the VM's network namespace with the cgroup hierarchies bound back in. Each
// VM owns a cgroup subtree (`pke-lab/NAME` in every v1 hierarchy): its processes, the kubelet's
// pods (the kubelet's --cgroup-root) and the containers under them, so that destroying the VM
// stops every process it started, by PID, and nothing else.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type Options, type ResultPromise } from 'execa';

const CGROUP_ROOT = '/sys/fs/cgroup';
/** The cgroup v1 hierarchies the kubelet and runc use; each gets the VM's subtree. */
const HIERARCHIES = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd'];
/** Present only inside a lab VM: the stand-ins that act on `/` there (systemctl) look for it. */
export const LAB_VM_MARKER = '/run/pke-lab-vm';
const OVERLAID = ['etc', 'var', 'opt', 'root'];
const SETTLE_MS = 5_000;

export interface VmSpec {
  name: string;
  /** The network namespace the lab made for this VM (`ip netns`). */
  namespace: string;
  /** Where the VM's changes to the machine's files live. */
  dir: string;
  /** The VM's cgroup, relative to each hierarchy's root, e.g. pke-lab-m1. */
  cgroup: string;
}

export class LabVm {
  readonly spec: VmSpec;
  private readonly holder: ResultPromise;
  private readonly holderPid: number;

  private constructor(spec: VmSpec, holder: ResultPromise, holderPid: number) {
    this.spec = spec;
    this.holder = holder;
    this.holderPid = holderPid;
  }

  /** The cgroup the kubelet is given as --cgroup-root: the VM's pods go below it. */
  get kubeletCgroupRoot(): string {
    return `/${this.spec.cgroup}`;
  }

  static async boot(spec: VmSpec): Promise<LabVm> {
    createCgroups(spec.cgroup);
    for (const dir of [...OVERLAID.flatMap((d) => [`${d}-upper`, `${d}-work`]), 'containerd', 'cgroup-bind']) {
      mkdirSync(path.join(spec.dir, dir), { recursive: true });
    }
    const pidFile = path.join(spec.dir, 'holder.pid');
    // Left by the VM's previous boot, if it had one.
    rmSync(pidFile, { force: true });
    const overlays = OVERLAID.map(
      (d) => `mount -t overlay overlay -o lowerdir=/${d},upperdir=${spec.dir}/${d}-upper,workdir=${spec.dir}/${d}-work /${d}`,
    );
    const script = [
      'set -e',
      joinCgroupsCommand(spec.cgroup),
      `mount --rbind ${CGROUP_ROOT} ${spec.dir}/cgroup-bind`,
      'mount -t sysfs sysfs /sys',
      `mount --rbind ${spec.dir}/cgroup-bind ${CGROUP_ROOT}`,
      `umount -l ${spec.dir}/cgroup-bind`,
      ...overlays,
      'mkdir -p /var/lib/containerd',
      `mount --bind ${spec.dir}/containerd /var/lib/containerd`,
      'mount -t tmpfs -o mode=755 tmpfs /run',
      `touch ${LAB_VM_MARKER}`,
      `hostname ${spec.name}`,
      // Renamed into place: the pid is whole once the file is there.
      `echo $$ > ${pidFile}.tmp && mv ${pidFile}.tmp ${pidFile}`,
      'exec sleep infinity',
    ].join('\n');
    const holder = execa(
      'nsenter',
      [`--net=/run/netns/${spec.namespace}`, 'unshare', '--mount', '--uts', '--propagation', 'private', '--fork', 'sh', '-c', script],
      { reject: false, stdin: 'ignore', buffer: true },
    );
    // Up to 30 s: a busy machine (a whole test run beside it) may take its time.
    for (let i = 0; i < 600 && !existsSync(pidFile); i++) {
      if (holder.exitCode !== null) break;
      await sleep(50);
    }
    if (!existsSync(pidFile)) {
      holder.kill('SIGKILL');
      const result = await holder;
      removeCgroups(spec.cgroup);
      throw new Error(
        `VM ${spec.name}: its namespaces could not be set up (exit ${result.exitCode}): ${String(result.stderr).trim().slice(-500)}`,
      );
    }
    return new LabVm(spec, holder, Number(readFileSync(pidFile, 'utf8').trim()));
  }

  /**
   * `command` run inside the VM (its namespaces and cgroup), as a process of that machine would.
   * `env` replaces the environment.
   */
  run(command: string, args: string[], options: Options & { env: Record<string, string> }): ResultPromise<Options> {
    return execa(
      'sh',
      ['-c', `${joinCgroupsCommand(this.spec.cgroup)}\nexec nsenter -t ${this.holderPid} -m -u -n -- "$@"`, 'sh', command, ...args],
      {
        ...options,
        extendEnv: false,
      },
    );
  }

  /** Every process in the VM's cgroups, SIGKILLed until none is left; then the cgroups removed. */
  async destroy(): Promise<void> {
    await killCgroup(this.spec.cgroup, this.spec.name);
    await this.holder;
  }
}

/** The VMs an earlier run with this prefix left (a cgroup named so): their processes killed, their cgroups removed. */
export async function removeLeftoverVms(prefix: string): Promise<string[]> {
  const pidsRoot = path.join(CGROUP_ROOT, 'pids');
  const names = HIERARCHIES.flatMap((h) => {
    try {
      return readdirSync(path.join(CGROUP_ROOT, h)).filter((name) => name.startsWith(prefix));
    } catch {
      return [];
    }
  });
  const unique = [...new Set(names)];
  for (const cgroup of unique) {
    if (existsSync(path.join(pidsRoot, cgroup))) await killCgroup(cgroup, cgroup);
    else removeCgroups(cgroup);
  }
  return unique.map((cgroup) => `cgroup ${cgroup}`);
}

/** The VM's processes whose command name is `name` (/proc/PID/comm). */
export function processesNamed(cgroup: string, name: string): number[] {
  return processesIn(cgroup).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name;
    } catch {
      return false;
    }
  });
}

async function killCgroup(cgroup: string, label: string): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const pids = processesIn(cgroup);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    if (Date.now() > deadline) throw new Error(`VM ${label}: processes ${pids.join(' ')} survived SIGKILL`);
    await sleep(50);
  }
  removeCgroups(cgroup);
}

/**
 * Where a file the VM wrote under one of its copy-on-write trees lies on this machine (the
 * overlay's upper directory, the VM's "disk"): `/var/lib/x` of the VM is DIR/var-upper/lib/x.
 */
export function fileOnDisk(vmDir: string, file: string): string {
  const [, top = '', ...rest] = file.split('/');
  if (!OVERLAID.includes(top)) throw new Error(`${file}: not on a VM's disk (only ${OVERLAID.map((d) => `/${d}`).join(', ')} are)`);
  return path.join(vmDir, `${top}-upper`, ...rest);
}

/** Shell lines that move the current shell into the VM's cgroup in every hierarchy. */
function joinCgroupsCommand(cgroup: string): string {
  return HIERARCHIES.map((h) => `echo $$ > ${CGROUP_ROOT}/${h}/${cgroup}/cgroup.procs`).join('\n');
}

function createCgroups(cgroup: string): void {
  for (const hierarchy of HIERARCHIES) {
    let parent = path.join(CGROUP_ROOT, hierarchy);
    for (const part of cgroup.split('/')) {
      const dir = path.join(parent, part);
      mkdirSync(dir, { recursive: true });
      // A new cpuset has no CPUs or memory nodes: a task cannot join it until they are set.
      if (hierarchy === 'cpuset') {
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          if (readFileSync(path.join(dir, file), 'utf8').trim() === '')
            writeFileSync(path.join(dir, file), readFileSync(path.join(parent, file)));
        }
      }
      parent = dir;
    }
  }
}

/** The PIDs in the VM's subtree of the pids hierarchy: every task it holds, whoever started it. */
export function processesIn(cgroup: string): number[] {
  const pids: number[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const line of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.push(Number(line));
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(path.join(dir, entry.name));
  };
  walk(path.join(CGROUP_ROOT, 'pids', cgroup));
  return pids;
}

/** The VM's cgroups in every hierarchy, deepest first (a cgroup with children cannot go). */
function removeCgroups(cgroup: string): void {
  for (const hierarchy of HIERARCHIES) {
    const removeTree = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeTree(path.join(dir, entry.name));
      rmdirSync(dir);
    };
    removeTree(path.join(CGROUP_ROOT, hierarchy, cgroup));
  }
}
