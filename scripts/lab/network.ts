// The lab's network: one namespace per VM (and one for the controller), all wired to a bridge
// that lives in a "switch" namespace of its own. Nothing is added to the host's own namespace:
// every address below exists only inside namespaces this code made, and is gone when they are.
import { execa } from 'execa';

/** TEST-NET-2 (RFC 5737): documentation addresses, never routed anywhere. */
export const LAB_SUBNET = { prefix: '198.51.100', bits: 24 } as const;

export interface LabHost {
  /** Short name: ctl, m1, m2, w1, ... */
  name: string;
  namespace: string;
  ip: string;
}

export interface LabNetwork {
  prefix: string;
  switchNamespace: string;
  hosts: LabHost[];
  vip: string;
  gateway: string;
}

async function ip(args: string[]): Promise<string> {
  const result = await execa('ip', args, { reject: false });
  if (result.exitCode !== 0) throw new Error(`ip ${args.join(' ')} exited ${result.exitCode}: ${String(result.stderr).trim()}`);
  return String(result.stdout);
}

/** Namespaces whose names start with the prefix (left by this run or an earlier one). */
export async function listNamespaces(prefix: string): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
}

/** Every process inside a namespace, by PID (`ip netns pids`). */
export async function namespacePids(namespace: string): Promise<number[]> {
  const out = await execa('ip', ['netns', 'pids', namespace], { reject: false });
  return String(out.stdout)
    .split('\n')
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

/** Stops every process in the namespaces (TERM, then KILL) and deletes them. */
export async function removeNamespaces(prefix: string): Promise<string[]> {
  const namespaces = await listNamespaces(prefix);
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = (await Promise.all(namespaces.map(namespacePids))).flat();
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    if (pids.length > 0 && signal === 'SIGTERM') {
      for (let i = 0; i < 30; i++) {
        if ((await Promise.all(namespaces.map(namespacePids))).flat().length === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  for (const namespace of namespaces) await ip(['netns', 'delete', namespace]);
  return namespaces;
}

/** Root, and `ip netns` available: what the lab and the namespace tests need. */
export async function namespacesAvailable(): Promise<{ ok: boolean; reason?: string }> {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'network namespaces need root' };
  const probe = `pke-probe-${process.pid}`;
  const result = await execa('ip', ['netns', 'add', probe], { reject: false });
  if (result.exitCode !== 0) return { ok: false, reason: `ip netns add failed: ${String(result.stderr).trim()}` };
  await execa('ip', ['netns', 'delete', probe], { reject: false });
  return { ok: true };
}

/**
 * Makes the switch namespace with a bridge, and one namespace per host with `eth0` on that
 * bridge, an address, loopback up and a default route (so the agent's "default route
 * interface" is eth0, as on a VM).
 */
export async function createNetwork(prefix: string, names: string[]): Promise<LabNetwork> {
  const { prefix: net, bits } = LAB_SUBNET;
  const switchNamespace = `${prefix}sw`;
  const gateway = `${net}.1`;
  await ip(['netns', 'add', switchNamespace]);
  await ip(['-n', switchNamespace, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', switchNamespace, 'addr', 'add', `${gateway}/${bits}`, 'dev', 'br0']);
  await ip(['-n', switchNamespace, 'link', 'set', 'br0', 'up']);
  await ip(['-n', switchNamespace, 'link', 'set', 'lo', 'up']);

  const hosts: LabHost[] = [];
  for (const [index, name] of names.entries()) {
    const namespace = `${prefix}${name}`;
    const address = `${net}.${10 + index}`;
    const port = `p${index}`;
    await ip(['netns', 'add', namespace]);
    await ip(['-n', switchNamespace, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace]);
    await ip(['-n', switchNamespace, 'link', 'set', port, 'master', 'br0', 'up']);
    await ip(['-n', namespace, 'addr', 'add', `${address}/${bits}`, 'dev', 'eth0']);
    await ip(['-n', namespace, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
    await ip(['-n', namespace, 'route', 'add', 'default', 'via', gateway]);
    hosts.push({ name, namespace, ip: address });
  }
  return { prefix, switchNamespace, hosts, vip: `${net}.100`, gateway };
}

/** The namespace whose eth0 holds the address now, if any (who holds the VIP). */
export async function holderOf(network: LabNetwork, address: string): Promise<LabHost | undefined> {
  for (const host of network.hosts) {
    if (await eth0Prefix(host, address)) return host;
  }
  return undefined;
}

/**
 * Takes an address off a host's eth0 if it is there. A SIGKILLed keepalived leaves its VIP on the
 * interface, and a namespace outlives its processes; a VM that loses power comes back without it.
 */
export async function dropAddress(host: LabHost, address: string): Promise<void> {
  const prefix = await eth0Prefix(host, address);
  if (prefix) await ip(['-n', host.namespace, 'addr', 'del', `${address}/${prefix}`, 'dev', 'eth0']);
}

/** The prefix length the address has on the host's eth0, or undefined when eth0 does not have it. */
async function eth0Prefix(host: LabHost, address: string): Promise<string | undefined> {
  const out = await ip(['-n', host.namespace, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return out.match(new RegExp(` ${address.replaceAll('.', '\\.')}/(\\d+) `))?.[1];
}

/** One more host on the lab's bridge (a VM that appeared after the network was made), with the next free address. */
export async function addHost(network: LabNetwork, name: string): Promise<LabHost> {
  const { prefix: net, bits } = LAB_SUBNET;
  const used = new Set(network.hosts.map((h) => Number(h.ip.split('.')[3])));
  let last = 10;
  while (used.has(last)) last++;
  if (last >= 100) throw new Error(`lab network: no address left for ${name}`);
  const namespace = `${network.prefix}${name}`;
  const port = `p${last - 10}`;
  const address = `${net}.${last}`;
  await ip(['netns', 'add', namespace]);
  await ip(['-n', network.switchNamespace, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace]);
  await ip(['-n', network.switchNamespace, 'link', 'set', port, 'master', 'br0', 'up']);
  await ip(['-n', namespace, 'addr', 'add', `${address}/${bits}`, 'dev', 'eth0']);
  await ip(['-n', namespace, 'link', 'set', 'eth0', 'up']);
  await ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
  await ip(['-n', namespace, 'route', 'add', 'default', 'via', network.gateway]);
  const host = { name, namespace, ip: address };
  network.hosts.push(host);
  return host;
}

/** A host's namespace gone with every process in it (its VM was destroyed); its veth goes with it. */
export async function removeHost(network: LabNetwork, host: LabHost): Promise<void> {
  await removeNamespaces(host.namespace);
  network.hosts.splice(network.hosts.indexOf(host), 1);
}
