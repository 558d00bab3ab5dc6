/**
 * What a node needs from the kernel for Kubernetes networking (the container overlay
 * filesystem, bridged pod traffic through iptables, forwarding between interfaces), and the two
 * files that make it hold at every boot. The one source: host-prep applies it, `preflight
 * --image` checks it, the lab's VMs boot with it, and the image build installs the files as
 * `scripts/write-kernel-files.ts` writes them out for it (packer/scripts/kernel/), so a node
 * from the image finds them in place.
 */

export const KERNEL_MODULES: readonly string[] = ['overlay', 'br_netfilter'];

export const SYSCTLS: Readonly<Record<string, string>> = {
  'net.bridge.bridge-nf-call-iptables': '1',
  'net.bridge.bridge-nf-call-ip6tables': '1',
  'net.ipv4.ip_forward': '1',
};

export const MODULES_LOAD_FILE = '/etc/modules-load.d/pke-kubernetes.conf';
export const SYSCTL_FILE = '/etc/sysctl.d/90-pke-kubernetes.conf';

export const MODULES_LOAD_TEXT = `# pke: kernel modules Kubernetes networking needs, loaded at every boot\n${KERNEL_MODULES.join('\n')}\n`;
export const SYSCTL_TEXT = `# pke: pod traffic crosses bridges and is forwarded between interfaces\n${Object.entries(SYSCTLS)
  .map(([key, value]) => `${key} = ${value}`)
  .join('\n')}\n`;

/** The setting a module brings with it, for the modules that bring one. */
const SETTING_OF_MODULE: ReadonlyMap<string, string> = new Map([['br_netfilter', 'net.bridge.bridge-nf-call-iptables']]);

/**
 * The files any of which shows that a module is loaded or built into the kernel: /sys/module/NAME,
 * which a module built in without parameters lacks (br_netfilter), and the file of the setting it
 * brings, which kubeadm's preflight reads.
 */
export function moduleEvidence(module: string): string[] {
  const setting = SETTING_OF_MODULE.get(module);
  return [`/sys/module/${module}`, ...(setting === undefined ? [] : [sysctlPath(setting)])];
}

/** The kernel's file for a setting: `net.ipv4.ip_forward` is /proc/sys/net/ipv4/ip_forward. */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replaceAll('.', '/')}`;
}
