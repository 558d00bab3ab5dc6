import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import path from 'node:path';
import { afterEach } from 'vitest';
import { Lab, type AgentLogLine, type LabNode, type LabOptions } from '../../scripts/lab/cluster.ts';
import { dropAddress, namespacePids, namespacesAvailable } from '../../scripts/lab/network.ts';
import { ensureBuilt } from '../../scripts/ensure-built.ts';
import { fileOnDisk } from '../../scripts/lab/vm.ts';
import { REPO } from '../helpers/cli.ts';

/** Why the namespace scenarios cannot run here, or undefined when they can. */
export async function namespaceSkipReason(): Promise<string | undefined> {
  const available = await namespacesAvailable();
  return available.ok ? undefined : available.reason;
}

export interface ScenarioLab {
  lab: Lab;
  /** Every agent log line per node, across runs. */
  logs: Map<string, AgentLogLine[]>;
  boot(node: LabNode, env?: Record<string, string>): Promise<number>;
  /** Starts a bootstrap and resolves when `until` matches one of its log lines (or it exits). */
  bootUntil(
    node: LabNode,
    until: (line: AgentLogLine) => boolean,
    env?: Record<string, string>,
  ): Promise<{ matched: boolean; done: Promise<number> }>;
  /** `pke-agent ARGS` on a node (an upgrade); resolves when `until` matches a log line (or it exits). */
  runUntil(node: LabNode, args: string[], until: (line: AgentLogLine) => boolean): Promise<{ matched: boolean; done: Promise<number> }>;
  node(name: string): LabNode;
  /** The stand-ins' call log of a node: one entry per call. */
  calls(node: LabNode, tool?: string): { time: string; tool: string; argv: string[] }[];
  /**
   * Acts out a power cut: every process in the VM's namespace (on the real tier: its cgroup) is
   * killed, and the VIP, if the VM held it, is gone from its NIC. A real-tier VM then stays off
   * until `lab.powerOn`.
   */
  powerCut(node: LabNode): Promise<void>;
  /**
   * SIGKILLs the agent and the commands it runs (as systemd stopping its unit would), but not
   * the API server, which on a real node is a static pod of the kubelet.
   */
  killAgent(node: LabNode): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A lab for one test: its own namespace prefix (so test files can run side by side) and its
 * own work directory, both removed by destroy().
 */
export async function scenarioLab(name: string, options: Partial<LabOptions> & { masters: number; workers: number }): Promise<ScenarioLab> {
  const executable = await ensureBuilt();
  const prefix = `pke-t${process.pid % 10000}${name}-`;
  const lab = await Lab.create({ prefix, workDir: path.join(REPO, '.cache/e2e', `${name}-${process.pid}`), executable, ...options });
  const logs = new Map<string, AgentLogLine[]>();
  const record = (node: LabNode) => (line: AgentLogLine) => {
    const list = logs.get(node.name) ?? [];
    list.push(line);
    logs.set(node.name, list);
  };
  const runUntil = (
    node: LabNode,
    args: string[],
    until: (line: AgentLogLine) => boolean,
    env?: Record<string, string>,
  ): Promise<{ matched: boolean; done: Promise<number> }> =>
    new Promise((resolve) => {
      let settled = false;
      const child = lab.startAgent(
        node,
        args,
        (line) => {
          record(node)(line);
          if (!settled && until(line)) {
            settled = true;
            resolve({ matched: true, done });
          }
        },
        env,
      );
      const done = child.then((result) => result.exitCode ?? -1);
      void done.then(() => {
        if (!settled) {
          settled = true;
          resolve({ matched: false, done });
        }
      });
    });
  const harness: ScenarioLab = {
    lab,
    logs,
    boot: async (node, env) => (await lab.startNode(node, record(node), env)).exitCode ?? -1,
    bootUntil: (node, until, env) => runUntil(node, ['bootstrap', '--json'], until, env),
    runUntil: (node, args, until) => runUntil(node, args, until),
    node: (nodeName) => {
      const found = lab.nodes.find((n) => n.name === nodeName);
      if (!found) throw new Error(`no lab node ${nodeName}`);
      return found;
    },
    calls: (node, tool) => {
      const file = path.join(node.root, 'var/log/pke-standins/calls.jsonl');
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { time: string; tool: string; argv: string[] })
        .filter((call) => tool === undefined || call.tool === tool);
    },
    powerCut: async (node) => {
      if (node.vm) {
        await lab.powerOff(node);
        await node.bootstrap?.catch(() => undefined);
        await dropAddress(node.host, lab.network.vip);
        return;
      }
      for (const pid of await namespacePids(node.host.namespace)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await node.bootstrap?.catch(() => undefined);
      await dropAddress(node.host, lab.network.vip);
    },
    killAgent: async (node) => {
      const pid = node.bootstrap?.pid;
      if (pid === undefined) return;
      const apiserverFile = path.join(node.root, 'run/pke-standins/apiserver.pid');
      const spared = existsSync(apiserverFile) ? Number(readFileSync(apiserverFile, 'utf8').trim()) : -1;
      for (const victim of [pid, ...descendants(pid)].filter((p) => p !== spared)) {
        try {
          process.kill(victim, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await node.bootstrap?.catch(() => undefined);
    },
    destroy: () => lab.destroy(),
  };
  return harness;
}

/** Returns `track`: every scenario lab passed through it is destroyed after the test that made it. */
export function destroyedAfterEach(): (lab: ScenarioLab) => ScenarioLab {
  const labs: ScenarioLab[] = [];
  afterEach(async () => {
    await Promise.all(labs.splice(0).map((lab) => lab.destroy()));
  }, 60_000);
  return (lab) => {
    labs.push(lab);
    return lab;
  };
}

/** The journal of a node, as the agent wrote it (a real-tier VM's is on its disk). */
export function journalOf(node: LabNode): {
  phases: Record<string, { state: string; attempts: number; startedAt?: string; endedAt?: string; lastError?: { message: string } }>;
} {
  const file = '/var/lib/pke-agent/journal.json';
  return JSON.parse(
    readFileSync(existsSync(path.join(node.root, 'var-upper')) ? fileOnDisk(node.root, file) : path.join(node.root, file), 'utf8'),
  );
}

/** Every process below `pid` in the process tree (from /proc), children first found first. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // the process ended while we looked
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** `argv` run inside the node's VM with the lab's environment for it; never rejects, the exit code says. */
export async function runInVm(s: ScenarioLab, node: LabNode, argv: string[]) {
  const result = await node.vm!.run(argv[0]!, argv.slice(1), { env: s.lab.nodeEnvironment(node), reject: false });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** etcdctl against the node's local etcd member, with kubeadm's health-check client certificate. */
export function etcdctl(s: ScenarioLab, node: LabNode, args: string[]) {
  const pki = '/etc/kubernetes/pki/etcd';
  return runInVm(s, node, [
    'etcdctl',
    '--endpoints',
    'https://127.0.0.1:2379',
    '--cacert',
    `${pki}/ca.crt`,
    '--cert',
    `${pki}/healthcheck-client.crt`,
    '--key',
    `${pki}/healthcheck-client.key`,
    ...args,
  ]);
}

/** The etcd cluster's members as the node's local member lists them. */
export async function etcdMembers(s: ScenarioLab, node: LabNode): Promise<{ name: string; isLearner?: boolean }[]> {
  const result = await etcdctl(s, node, ['member', 'list', '-w', 'json']);
  if (result.exitCode !== 0) throw new Error(`etcdctl member list on ${node.name} exited ${result.exitCode}: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { members: { name: string; isLearner?: boolean }[] }).members;
}

/** /livez through the VIP from the network namespace `from`, as a client would see it, every 250 ms until stopped. */
export function probeVip(s: ScenarioLab, from: string) {
  let probing = true;
  let probes = 0;
  let failed = 0;
  let lastOk = 0;
  let outageStart: number | undefined;
  let longestOutageMs = 0;
  const outages: string[] = [];
  const ended = (start: number, end: number) => {
    longestOutageMs = Math.max(longestOutageMs, end - start);
    outages.push(`${new Date(start).toISOString()}..${new Date(end).toISOString()}`);
  };
  const loop = (async () => {
    while (probing) {
      const at = Date.now();
      const answer = await execa(
        'ip',
        [
          'netns',
          'exec',
          from,
          'curl',
          '-sk',
          '--max-time',
          '1',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          `https://${s.lab.network.vip}:6443/livez`,
        ],
        { reject: false },
      );
      probes += 1;
      if (String(answer.stdout) === '200') {
        if (outageStart !== undefined) ended(outageStart, at);
        outageStart = undefined;
        lastOk = Date.now();
      } else {
        failed += 1;
        outageStart ??= at;
      }
      await sleep(250);
    }
  })();
  return {
    lastOk: () => lastOk,
    stop: async () => {
      probing = false;
      await loop;
      if (outageStart !== undefined) ended(outageStart, Date.now());
      return { probes, failed, longestOutageMs, outages };
    },
  };
}
