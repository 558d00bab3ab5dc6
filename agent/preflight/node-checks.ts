import { createServer } from 'node:net';
import type { Role } from '../config/schema.ts';
import type { Host } from '../host/host.ts';
import type { NodeFacts } from '../node/facts.ts';
import type { CheckResult } from './check.ts';

/** kubeadm's own preflight minimums for a control-plane node. */
const CONTROL_PLANE_MIN_CPUS = 2;
const CONTROL_PLANE_MIN_MEMORY_MB = 1700;

/** Ports the node's components listen on; kubeadm refuses to start when one is taken. */
function requiredPorts(role: Role): number[] {
  return role === 'master' ? [6443, 10250, 10257, 10259, 2379, 2380] : [10250];
}

/** Commands a node runs during bootstrap; without one, a later phase would fail halfway. */
function requiredBinaries(role: Role): string[] {
  const common = ['kubeadm', 'kubelet', 'kubectl', 'containerd', 'modprobe', 'swapoff', 'systemctl'];
  return role === 'master' ? [...common, 'keepalived', 'curl'] : common;
}

export interface NodeCheckOptions {
  role: Role;
  /** Ports to test; default: requiredPorts(role). */
  ports?: number[];
}

/** Node checks made before anything on the host is changed: resources, swap, ports, binaries. */
export async function nodeChecks(host: Host, facts: NodeFacts, options: NodeCheckOptions): Promise<CheckResult[]> {
  const { role } = options;
  const results: CheckResult[] = [];
  const isMaster = role === 'master';
  const memoryMb = Math.floor(facts.memoryBytes / 1024 / 1024);

  results.push({
    name: 'cpus',
    ok: !isMaster || facts.cpus >= CONTROL_PLANE_MIN_CPUS,
    severity: 'error',
    detail: isMaster ? `${facts.cpus} CPUs (a control-plane node needs ${CONTROL_PLANE_MIN_CPUS})` : `${facts.cpus} CPUs`,
  });
  results.push({
    name: 'memory',
    ok: !isMaster || memoryMb >= CONTROL_PLANE_MIN_MEMORY_MB,
    severity: 'error',
    detail: isMaster ? `${memoryMb} MB (a control-plane node needs ${CONTROL_PLANE_MIN_MEMORY_MB} MB)` : `${memoryMb} MB`,
  });
  results.push({
    name: 'swap',
    ok: facts.swapBytes === 0,
    // host-prep turns swap off, so swap that is on now is worth knowing but not fatal.
    severity: 'warning',
    detail: facts.swapBytes === 0 ? 'off' : `${Math.round(facts.swapBytes / 1024 / 1024)} MB on; host-prep will turn it off`,
  });

  const taken = await takenPorts(options.ports ?? requiredPorts(role));
  results.push({
    name: 'ports',
    ok: taken.length === 0,
    severity: 'error',
    detail: taken.length === 0 ? `free: ${(options.ports ?? requiredPorts(role)).join(', ')}` : `in use: ${taken.join(', ')}`,
  });

  const missing: string[] = [];
  for (const binary of requiredBinaries(role)) if (!(await host.which(binary))) missing.push(binary);
  results.push({
    name: 'binaries',
    ok: missing.length === 0,
    severity: 'error',
    detail: missing.length === 0 ? `found: ${requiredBinaries(role).join(', ')}` : `not found on PATH: ${missing.join(', ')}`,
  });
  return results;
}

/** Ports that something already listens on, found by trying to listen on each (exact, and no parsing of ss output). */
async function takenPorts(ports: number[]): Promise<number[]> {
  const checks = await Promise.all(ports.map(async (port) => ((await canListen(port)) ? undefined : port)));
  return checks.filter((p): p is number => p !== undefined);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export function failedChecks(results: CheckResult[]): CheckResult[] {
  return results.filter((r) => !r.ok && r.severity === 'error');
}
