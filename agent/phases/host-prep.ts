import type { CgroupDriver } from '../config/schema.ts';
import { errorMessage, PkeError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { UnitState } from '../host/unit-state.ts';
import {
  CONTAINERD_CONFIG,
  containerdConfigFitsKubernetes,
  parseContainerdMajor,
  renderContainerdConfig,
} from '../kube/containerd-config.ts';
import {
  KERNEL_MODULES,
  MODULES_LOAD_FILE,
  MODULES_LOAD_TEXT,
  moduleEvidence,
  SYSCTL_FILE,
  SYSCTL_TEXT,
  SYSCTLS,
  sysctlPath,
} from '../node/kernel.ts';
import type { Phase, PhaseContext } from './phase.ts';

/**
 * What the kubelet and kubeadm's preflight need from the OS: kernel modules, forwarding and
 * bridge sysctls, swap off, containerd on the site's cgroup driver, the kubelet enabled. Each
 * step looks first and acts only when something is missing, so a rerun changes nothing.
 */

export interface HostPrepOutput {
  /** The steps that changed something on this run. */
  changed: string[];
}

type Unit = 'containerd' | 'kubelet';
const UNITS: readonly Unit[] = ['containerd', 'kubelet'];

/**
 * What the steps of one pass share: the host, and the units' states from one `systemctl show`,
 * asked when a step first needs them. The answer holds for the whole pass: the only change a
 * step makes to a unit a later step reads is containerd's restart, which leaves it active.
 */
interface Pass {
  host: Host;
  cgroupDriver: CgroupDriver;
  units: () => Promise<Record<Unit, UnitState>>;
}

interface Step {
  name: string;
  inPlace: (pass: Pass) => Promise<boolean>;
  apply: (pass: Pass) => Promise<void>;
}

const FSTAB = '/etc/fstab';
const SWAP_COMMENT = '# swap disabled by pke-agent (the kubelet needs swap off): ';

const kernelModules: Step = {
  name: 'kernel-modules',
  inPlace: async ({ host }) => (await host.readText(MODULES_LOAD_FILE)) === MODULES_LOAD_TEXT && (await missingModules(host)).length === 0,
  apply: async ({ host }) => {
    if ((await host.readText(MODULES_LOAD_FILE)) !== MODULES_LOAD_TEXT) await host.writeFile(MODULES_LOAD_FILE, MODULES_LOAD_TEXT);
    const missing = await missingModules(host);
    // -a: without it, modprobe takes the words after the first module as that module's parameters.
    if (missing.length > 0) await host.run('modprobe', ['-a', ...missing]);
  },
};

const sysctls: Step = {
  name: 'sysctl',
  inPlace: async ({ host }) => (await host.readText(SYSCTL_FILE)) === SYSCTL_TEXT && (await sysctlsOff(host)).length === 0,
  apply: async ({ host }) => {
    if ((await host.readText(SYSCTL_FILE)) !== SYSCTL_TEXT) await host.writeFile(SYSCTL_FILE, SYSCTL_TEXT);
    // The file holds them across reboots; for now each one that is off is written to the kernel, as sysctl would.
    for (const [key, value] of await sysctlsOff(host)) await writeSysctl(host, key, value);
  },
};

const swapOff: Step = {
  name: 'swap',
  inPlace: async ({ host }) => !(await swapActive(host)) && fstabSwapLines(await host.readText(FSTAB)).length === 0,
  apply: async ({ host }) => {
    if (await swapActive(host)) await host.run('swapoff', ['-a']);
    const fstab = await host.readText(FSTAB);
    if (fstab !== undefined && fstabSwapLines(fstab).length > 0) await host.writeFile(FSTAB, commentOutSwap(fstab), { mode: 0o644 });
  },
};

const containerdConfig: Step = {
  name: 'containerd-config',
  inPlace: async ({ host, cgroupDriver }) => containerdConfigFitsKubernetes((await host.readText(CONTAINERD_CONFIG)) ?? '', cgroupDriver),
  apply: async ({ host, cgroupDriver, units }) => {
    const version = await host.run('containerd', ['--version']);
    const major = parseContainerdMajor(version.stdout);
    if (major === undefined) throw new Error(`cannot tell the containerd version from: ${version.stdout.trim()}`);
    await host.writeFile(CONTAINERD_CONFIG, renderContainerdConfig(major, cgroupDriver));
    // A running containerd reads its config only at start; a stopped one is started below.
    if ((await units()).containerd.active) await host.service.restart('containerd');
  },
};

const containerdService: Step = {
  name: 'containerd-service',
  inPlace: async ({ units }) => {
    const { containerd } = await units();
    return containerd.enabled && containerd.active;
  },
  apply: ({ host }) => host.service.enableNow('containerd'),
};

// kubeadm starts the kubelet itself; enabled here so that it comes back after a reboot.
const kubeletEnabled: Step = {
  name: 'kubelet',
  inPlace: async ({ units }) => (await units()).kubelet.enabled,
  apply: ({ host }) => host.service.enable('kubelet'),
};

const STEPS: Step[] = [kernelModules, sysctls, swapOff, containerdConfig, containerdService, kubeletEnabled];

export const hostPrepPhase: Phase<HostPrepOutput> = {
  name: 'host-prep',
  summary: "Kernel modules, sysctls, swap off, containerd with the site's cgroup driver, kubelet enabled",
  needs: ['preflight'],
  isDone: async ({ host, config }: PhaseContext) => {
    const pass = startPass(host, config.kubernetes.cgroupDriver);
    for (const step of STEPS) if (!(await step.inPlace(pass))) return false;
    return true;
  },
  run: async ({ host, config, log }: PhaseContext) => {
    const pass = startPass(host, config.kubernetes.cgroupDriver);
    const changed: string[] = [];
    for (const step of STEPS) {
      if (await step.inPlace(pass)) {
        log.debug('host-prep.step', { step: step.name, changed: false });
        continue;
      }
      await step.apply(pass);
      changed.push(step.name);
      log.info('host-prep.step', { step: step.name, changed: true });
    }
    return { changed };
  },
};

function startPass(host: Host, cgroupDriver: CgroupDriver): Pass {
  let units: Promise<Record<Unit, UnitState>> | undefined;
  return { host, cgroupDriver, units: () => (units ??= host.service.states(UNITS)) };
}

/** Neither loaded nor built into the kernel. */
async function missingModules(host: Host): Promise<string[]> {
  const missing: string[] = [];
  for (const module of KERNEL_MODULES) {
    const present = await Promise.all(moduleEvidence(module).map((file) => host.exists(file)));
    if (!present.includes(true)) missing.push(module);
  }
  return missing;
}

/** The settings whose kernel value differs from the one Kubernetes needs, with that value. */
async function sysctlsOff(host: Host): Promise<[key: string, value: string][]> {
  const off: [string, string][] = [];
  for (const [key, value] of Object.entries(SYSCTLS)) {
    const current = await host.readText(sysctlPath(key));
    if (current?.trim() !== value) off.push([key, value]);
  }
  return off;
}

async function writeSysctl(host: Host, key: string, value: string): Promise<void> {
  const file = sysctlPath(key);
  try {
    await host.writeInPlace(file, `${value}\n`);
  } catch (error) {
    throw new PkeError(`cannot set ${key} = ${value} through ${file}: ${errorMessage(error)}`, { context: { path: file }, cause: error });
  }
}

/** /proc/swaps: a header line, then one line per active swap area. */
async function swapActive(host: Host): Promise<boolean> {
  const swaps = await host.readText('/proc/swaps');
  return (swaps ?? '')
    .split('\n')
    .slice(1)
    .some((line) => line.trim() !== '');
}

function fstabSwapLines(fstab: string | undefined): string[] {
  return (fstab ?? '').split('\n').filter(isSwapEntry);
}

function isSwapEntry(line: string): boolean {
  const fields = line.trim().split(/\s+/);
  return !line.trimStart().startsWith('#') && fields[2] === 'swap';
}

function commentOutSwap(fstab: string): string {
  return fstab
    .split('\n')
    .map((line) => (isSwapEntry(line) ? `${SWAP_COMMENT}${line}` : line))
    .join('\n');
}
