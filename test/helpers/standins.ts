import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NO_LEASE } from '../../agent/bootstrap/lease-keeper.ts';
import { runPhases } from '../../agent/bootstrap/runner.ts';
import { agentConfigSchema, type AgentConfig, type AgentConfigInput } from '../../agent/config/schema.ts';
import { createLogger, type Logger } from '../../agent/core/log.ts';
import { Host } from '../../agent/host/host.ts';
import type { PhaseOutputs } from '../../agent/journal/phase-outputs.ts';
import { Journal, type PhaseRecord } from '../../agent/journal/journal.ts';
import type { Phase, PhaseContext } from '../../agent/phases/phase.ts';
import type { ControlPlaneView, JoinGrant, VsphereCredentials } from '../../agent/protocol/api.ts';
import type { NodeApi } from '../../agent/protocol/node-api.ts';
import { renderInitConfig } from '../../agent/kube/kubeadm-config.ts';
import { kubeadmInit } from '../../agent/kube/kubeadm.ts';
import { KUBEADM_INIT_CONFIG } from '../../agent/kube/paths.ts';
import { factsOnce } from '../../agent/node/facts.ts';
import { freePort } from '../../scripts/free-port.ts';
import { CALL_LOG, STATE_DIR, SYSTEM_PATH_DIRS, type CallRecord } from '../standins/standin-common.ts';
import { validConfig } from './agent-config.ts';

/**
 * A scratch node for phase tests: a temp root that looks like a fresh VM to the stand-ins
 * (swap on, forwarding off, no kernel modules), a Host pointed at it with the stand-ins first
 * on PATH, and what a test needs to read back what happened and to clean up.
 */

const repo = path.resolve(import.meta.dirname, '../..');
const STANDIN_BIN = path.join(repo, 'test/standins/bin');
/** Stand-ins first, then the Node running the tests (the stand-ins need Node 24), then the system's tools (keepalived, curl). */
export const STANDIN_PATH = [STANDIN_BIN, path.dirname(process.execPath), ...SYSTEM_PATH_DIRS].join(path.delimiter);
const APISERVER_PID = '/run/pke-standins/apiserver.pid';

export interface LogLine {
  level: string;
  event: string;
  [field: string]: unknown;
}

export interface StandinNode {
  root: string;
  host: Host;
  /** Every line the node's logger wrote, parsed. */
  logLines: LogLine[];
  log: Logger;
  /** The stand-ins' call log, optionally for one tool. */
  calls(tool?: string): CallRecord[];
  /** Kills the API server stand-in this root started (by PID) and removes the root. */
  cleanup(): Promise<void>;
}

export async function createStandinNode(): Promise<StandinNode> {
  const root = await mkdtemp(path.join(tmpdir(), 'pke-node-'));
  const logLines: LogLine[] = [];
  const log = createLogger({ json: true, level: 'debug', write: (line) => logLines.push(JSON.parse(line) as LogLine) });
  const host = new Host({ root, path: STANDIN_PATH, log });
  await host.writeFile('/proc/sys/net/ipv4/ip_forward', '0\n');
  await host.writeFile(
    '/proc/swaps',
    'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda3                               partition\t2097148\t\t0\t\t-2\n',
  );
  await host.writeFile('/etc/fstab', 'UUID=0a1b / ext4 errors=remount-ro 0 1\nUUID=2c3d none swap sw 0 0\n');
  return {
    root,
    host,
    logLines,
    log,
    calls: (tool) => readCalls(root).filter((call) => tool === undefined || call.tool === tool),
    cleanup: async () => {
      killApiServer(root);
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** What host-prep leaves behind, for tests of the phases after it: forwarding on, swap off, the kubelet enabled. */
export async function markHostPrepared(node: StandinNode): Promise<void> {
  await node.host.writeFile('/proc/sys/net/ipv4/ip_forward', '1\n');
  await node.host.writeFile('/proc/swaps', 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
  await node.host.writeFile(`${STATE_DIR}/systemd/kubelet.service.enabled`, 'test\n');
}

/** The control-plane files the certs phase writes, from the controller's PKI (createClusterPki). */
export async function writeSharedPki(node: StandinNode, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await node.host.writeFile(`/etc/kubernetes/pki/${name}`, content, { mode: name.endsWith('.key') ? 0o600 : 0o644 });
  }
}

export function readCalls(root: string): CallRecord[] {
  const file = path.join(root, CALL_LOG);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as CallRecord);
}

/** `kubeadm init`, `kubeadm reset -f`...: each call's first words, for order assertions. */
export function commandLines(calls: CallRecord[], words = 2): string[] {
  return calls.map((call) => [call.tool, ...call.argv.slice(0, words - 1)].join(' '));
}

export function killApiServer(root: string): void {
  const file = path.join(root, APISERVER_PID);
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Runs `fn` with these environment variables set (the stand-ins' knobs reach them through Host), then restores them. */
export async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

export interface Leader {
  node: StandinNode;
  /** The API server stand-in's port on 127.0.0.1, which these tests use as the VIP. */
  port: number;
  /** The bootstrap token kubeadm init put into the cluster. */
  token: string;
}

/**
 * A first control-plane node made with the kubeadm stand-in: init with the agent's rendered
 * config, the API server stand-in on 127.0.0.1:PORT (127.0.0.1 standing in for the VIP).
 */
export async function initLeader(pki: Record<string, string>, clusterDir: string, token = 'abcdef.0123456789abcdef'): Promise<Leader> {
  const node = await createStandinNode();
  await markHostPrepared(node);
  await writeSharedPki(node, pki);
  const port = await freePort();
  const config = agentConfig({ nodeName: 'cp-1', controlPlaneEndpoint: { vip: '127.0.0.1', port } });
  const text = renderInitConfig({
    config,
    node: { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: 'eth0', ips: ['10.10.0.11'] },
    bootstrapToken: { token, ttlSeconds: 7200 },
  });
  await node.host.writeFile(KUBEADM_INIT_CONFIG, text, { mode: 0o600 });
  await withEnv({ PKE_STANDIN_APISERVER_LISTEN: `127.0.0.1:${port}`, PKE_STANDIN_CLUSTER_DIR: clusterDir }, () =>
    kubeadmInit(node.host, KUBEADM_INIT_CONFIG, node.log),
  );
  return { node, port, token };
}

export function agentConfig(overrides: Partial<AgentConfigInput> = {}): AgentConfig {
  return agentConfigSchema.parse(validConfig(overrides));
}

export interface FakeControllerOptions {
  /** Answers to join(), in order; an Error is thrown instead of answered. The last one repeats. */
  joins?: (JoinGrant | Error)[];
  view?: ControlPlaneView;
  vsphere?: VsphereCredentials;
}

/**
 * The controller as these phase tests need it: fixed join grants and control-plane view, and
 * a record of what was asked. A stand-in for the real client in these unit tests only.
 */
export function fakeController(options: FakeControllerOptions): NodeApi & { joinRequests: unknown[][] } {
  const joinRequests: unknown[][] = [];
  const unexpected = (name: string) => () => Promise.reject(new Error(`fake controller: ${name} was not expected in this test`));
  return {
    joinRequests,
    join: async (...args) => {
      joinRequests.push(args);
      const answers = options.joins ?? [];
      const answer = answers[Math.min(joinRequests.length, answers.length) - 1];
      if (!answer) throw new Error('fake controller: no join answer configured');
      if (answer instanceof Error) throw answer;
      return answer;
    },
    controlPlane: async () => {
      if (!options.view) throw new Error('fake controller: no control-plane view configured');
      return options.view;
    },
    register: unexpected('register'),
    claimLeader: unexpected('claimLeader'),
    leaderState: unexpected('leaderState'),
    pki: unexpected('pki'),
    vsphere: async () => {
      if (!options.vsphere) throw new Error('fake controller: no vCenter connection configured');
      return options.vsphere;
    },
    events: unexpected('events'),
    joined: unexpected('joined'),
    ready: unexpected('ready'),
    status: unexpected('status'),
  };
}

/**
 * Runs one phase through the real runner (its retry policy included), as a bootstrap reaches it:
 * the phases it needs are done in the journal, with the outputs the context gives them.
 */
export async function runThroughRunner(phase: Phase, ctx: PhaseContext): Promise<PhaseRecord> {
  const journal = await Journal.open(ctx.host);
  for (const need of phase.needs) {
    await journal.start(need);
    await journal.finish(need, ctx.outputs[need]);
  }
  await runPhases({ phases: [phase], journal, context: ctx, reporter: { report: () => {} }, log: ctx.log });
  return journal.record(phase.name);
}

export function phaseContext(node: StandinNode, config: AgentConfig, controller: NodeApi, outputs: PhaseOutputs): PhaseContext {
  return {
    config,
    host: node.host,
    controller,
    log: node.log,
    outputs,
    signal: new AbortController().signal,
    lease: NO_LEASE,
    facts: factsOnce(node.host),
  };
}

/** A non-loopback interface of this machine (keepalived -t refuses unknown ones), or undefined. */
export function existingInterface(): string | undefined {
  const dir = '/sys/class/net';
  if (!existsSync(dir)) return undefined;
  return readdirSyncSafe(dir).find((name) => name !== 'lo' && existsSync(path.join(dir, name, 'address')));
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
