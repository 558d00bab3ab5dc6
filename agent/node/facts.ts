import { readFile } from 'node:fs/promises';
import { availableParallelism, hostname as osHostname, networkInterfaces } from 'node:os';
import si from 'systeminformation';
import type { Host } from '../host/host.ts';

/** What the agent knows about the machine it runs on, as `status` shows it and `register` reports it. */
export interface NodeFacts {
  hostname: string;
  /** The BIOS UUID vSphere gives the VM (also its cloud-init instance-id). */
  biosUuid: string;
  cpus: number;
  memoryBytes: number;
  swapBytes: number;
  /** Non-loopback interfaces and their IPv4 addresses in CIDR form (10.0.0.5/24). */
  interfaces: { name: string; ipv4: string[] }[];
  defaultRouteInterface: string | undefined;
}

/**
 * Reads the facts. Files (hostname, BIOS UUID) are read below the host's root first, so a test
 * or lab VM can carry its own; counters, interfaces and the default route come from the kernel
 * (node:os, /proc/meminfo through systeminformation, /proc/net/route) without starting a
 * process. Only a VM without a BIOS UUID file has systeminformation probe for one.
 */
export async function gatherFacts(host: Host): Promise<NodeFacts> {
  const [mem, defaultInterface, hostnameFile, uuidFile] = await Promise.all([
    si.mem(),
    defaultRouteInterface(),
    host.readText('/etc/hostname'),
    host.readText('/sys/class/dmi/id/product_uuid'),
  ]);
  // node:os lists every address of an interface (a VIP is a second one on eth0); systeminformation only the first.
  const byName = new Map<string, string[]>();
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    const ipv4 = (addresses ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.cidr ?? `${a.address}/32`);
    if (ipv4.length > 0 || !(addresses ?? []).every((a) => a.internal)) byName.set(name, ipv4);
  }
  return {
    hostname: hostnameFile?.trim() || osHostname(),
    biosUuid: uuidFile?.trim().toLowerCase() || (await fallbackUuid()),
    // Logical CPUs this process may use, as kubeadm's preflight counts them (Go's runtime.NumCPU).
    cpus: availableParallelism(),
    memoryBytes: mem.total,
    swapBytes: mem.swaptotal,
    interfaces: [...byName].map(([name, ipv4]) => ({ name, ipv4 })),
    defaultRouteInterface: defaultInterface,
  };
}

/** A run's `facts()`: the first call gathers them, every later call gets the same answer. */
export function factsOnce(host: Host): () => Promise<NodeFacts> {
  let facts: Promise<NodeFacts> | undefined;
  return () => (facts ??= gatherFacts(host));
}

const RTF_UP = 0x1;

/**
 * The interface of the first IPv4 default route in the kernel's main table (what `ip route`
 * lists first), from /proc/net/route: destination and mask 0, flag RTF_UP.
 */
async function defaultRouteInterface(): Promise<string | undefined> {
  const table = await readFile('/proc/net/route', 'utf8').catch(() => '');
  for (const line of table.split('\n').slice(1)) {
    const [iface, destination, , flags, , , , mask] = line.trim().split(/\s+/);
    if (iface && destination === '00000000' && mask === '00000000' && (Number.parseInt(flags ?? '0', 16) & RTF_UP) !== 0) return iface;
  }
  return undefined;
}

async function fallbackUuid(): Promise<string> {
  const system = await si.system();
  if (system.uuid) return system.uuid.toLowerCase();
  return (await si.uuid()).os;
}

/**
 * The node's address on the VIP's network: on the named interface when there is one, else on
 * the interface whose subnet holds the VIP, else on the default route's interface.
 */
export function primaryAddress(
  facts: NodeFacts,
  vip: string,
  interfaceName?: string,
): { interface: string; ip: string; cidr: string } | undefined {
  const pick = (entry: { name: string; ipv4: string[] } | undefined, address = entry?.ipv4[0]) =>
    entry && address ? { interface: entry.name, ip: address.split('/')[0] ?? address, cidr: address } : undefined;
  if (interfaceName) return pick(facts.interfaces.find((i) => i.name === interfaceName));
  for (const entry of facts.interfaces) {
    const holder = entry.ipv4.find((cidr) => subnetContains(cidr, vip));
    if (holder) return pick(entry, holder);
  }
  return pick(facts.interfaces.find((i) => i.name === facts.defaultRouteInterface));
}

export function subnetContains(cidr: string, address: string): boolean {
  const [network, bits] = cidr.split('/');
  if (!network || bits === undefined) return false;
  const prefix = Number(bits);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return (toInt(network) & mask) >>> 0 === (toInt(address) & mask) >>> 0;
}

function toInt(address: string): number {
  return address.split('.').reduce((acc, octet) => ((acc << 8) | Number(octet)) >>> 0, 0);
}
