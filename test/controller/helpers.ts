import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import YAML from 'yaml';
import { agentConfigSchema, type AgentConfig } from '../../agent/config/schema.ts';
import { silentLogger } from '../../agent/core/log.ts';
import { startController, type ControllerOptions, type RunningController } from '../../agent/controller/controller.ts';
import type { ClusterSpecInput, ClusterSummary, Guestinfo, JoinGrant, NodeConfigResponse } from '../../agent/protocol/api.ts';
import { AdminClient, createNodeClient, type NodeClient, type RetryOptions } from '../../agent/protocol/client.ts';
import { ControllerRequestError } from '../../agent/protocol/errors.ts';
import { freePort } from '../../scripts/free-port.ts';
import { AGENT_ENTRY, scratchDir } from '../helpers/cli.ts';
import { adminKubeconfig, apiServerCredentials, startApiServerStandin, type ApiServerStandin } from '../standins/apiserver-standin.ts';

/** Retries off: a test sees the first answer. */
export const NO_RETRY: Partial<RetryOptions> = { retries: 0 };

export interface TestController {
  controller: RunningController;
  dataDir: string;
  admin: AdminClient;
  close(): Promise<void>;
}

/** A controller in this process on 127.0.0.1 and a free port, with its own data dir. */
export async function startTestController(
  options: Partial<Pick<ControllerOptions, 'log' | 'sans' | 'limits' | 'removals' | 'machines'>> = {},
): Promise<TestController> {
  const data = scratchDir('controller');
  const controller = await startController({
    dataDir: data.dir,
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    verifyStateTouches: true,
    ...options,
  });
  const admin = new AdminClient({
    url: controller.url,
    caCert: controller.caCertPem,
    token: (await readFile(controller.adminTokenFile, 'utf8')).trim(),
    retry: NO_RETRY,
  });
  return {
    controller,
    dataDir: data.dir,
    admin,
    close: async () => {
      await admin.close();
      await controller.close();
      data.remove();
    },
  };
}

export const CLUSTER_DEFAULTS: ClusterSpecInput = {
  name: 'demo',
  kubernetesVersion: '1.31.2',
  controlPlaneEndpoint: { vip: '10.10.0.100', port: 6443 },
};

let clusterCount = 0;
export async function createCluster(admin: AdminClient, spec: Partial<ClusterSpecInput> = {}): Promise<ClusterSummary> {
  clusterCount += 1;
  return admin.createCluster({ ...CLUSTER_DEFAULTS, name: `c${clusterCount}-${process.pid % 1000}`, ...spec });
}

/** Decodes one gzip+base64 guestinfo value. */
export function decodeGuestinfo(guestinfo: Guestinfo, key: string): string {
  const value = guestinfo[key];
  if (value === undefined) throw new Error(`guestinfo has no ${key}`);
  if (guestinfo[`${key}.encoding`] !== 'gzip+base64') throw new Error(`${key}.encoding is ${guestinfo[`${key}.encoding`]}`);
  return gunzipSync(Buffer.from(value, 'base64')).toString('utf8');
}

/** The agent config a VM would read from guestinfo.pke.config, validated as the agent validates it. */
export function agentConfigOf(config: NodeConfigResponse): AgentConfig {
  return agentConfigSchema.parse(YAML.parse(decodeGuestinfo(config.guestinfo, 'guestinfo.pke.config')));
}

export interface TestNode {
  name: string;
  config: AgentConfig;
  tokenId: string;
  client: NodeClient;
}

/** Renders a node config through the admin API and connects as that node, exactly as a VM would. */
export async function addNode(
  admin: AdminClient,
  cluster: string,
  name: string,
  role: 'master' | 'worker',
  options: { retry?: Partial<RetryOptions>; pool?: string } = {},
): Promise<TestNode> {
  const rendered = await admin.nodeConfig(cluster, { name, role, ...(options.pool ? { pool: options.pool } : {}) });
  const config = agentConfigOf(rendered);
  return { name, config, tokenId: rendered.tokenId, client: createNodeClient(config, { retry: options.retry ?? NO_RETRY }) };
}

export const registration = (name: string, ip = '10.10.0.11') => ({
  uuid: `uuid-${name}`,
  hostname: name,
  ips: [ip],
  primaryIp: ip,
  agentVersion: 'test',
});

export interface ClusterApiStandin {
  standin: ApiServerStandin;
  stateDir: string;
  /** admin.conf as kubeadm would write it, pointing at the stand-in with a cluster-CA client cert. */
  kubeconfig: string;
  close(): Promise<void>;
}

/** A TCP port on 127.0.0.1 that was free a moment ago: a cluster's endpoint before its API server listens there. */
/** A cluster whose endpoint is 127.0.0.1 on a free port, where its API server stand-in will listen. */
export async function createLocalCluster(admin: AdminClient, spec: Partial<ClusterSpecInput> = {}): Promise<ClusterSummary> {
  return createCluster(admin, { ...spec, controlPlaneEndpoint: { vip: '127.0.0.1', port: await freePort() } });
}

/** An admin.conf the controller accepts from the leader (the cluster CA, the cluster endpoint), for tests that never mint tokens through it. */
export async function acceptedKubeconfig(leader: TestNode): Promise<string> {
  const { vip, port } = leader.config.controlPlaneEndpoint;
  return adminKubeconfig(`https://${vip}:${port}`, (await leader.client.pki()).files['ca.crt'] ?? '', { certPem: 'cert', keyPem: 'key' });
}

/**
 * The API server stand-in at the cluster's endpoint (a cluster from createLocalCluster), with
 * certificates made from the cluster CA the way kubeadm makes them (apiserver serving cert;
 * kubernetes-admin client cert in system:masters).
 */
export async function startClusterApi(leader: TestNode, version = 'v1.31.2'): Promise<ClusterApiStandin> {
  const pki = await leader.client.pki();
  const ca = { certPem: pki.files['ca.crt'] ?? '', keyPem: pki.files['ca.key'] ?? '' };
  const { serving, admin } = await apiServerCredentials(ca);
  const state = scratchDir('apiserver');
  const { vip, port } = leader.config.controlPlaneEndpoint;
  const standin = await startApiServerStandin({
    host: vip,
    port,
    cert: serving.certPem,
    key: serving.keyPem,
    clientCa: ca.certPem,
    stateDir: state.dir,
    nodesDir: path.join(state.dir, 'nodes'),
    version,
  });
  return {
    standin,
    stateDir: state.dir,
    kubeconfig: adminKubeconfig(standin.url, ca.certPem, admin),
    close: async () => {
      await standin.close();
      state.remove();
    },
  };
}

/**
 * The leader's init as the agent reports it: it takes the lease, gets its init grant, and reports
 * joined with the admin.conf of an API server stand-in (the caller closes `api`).
 */
export async function initializedLeader(leader: TestNode): Promise<{ epoch: number; init: JoinGrant; api: ClusterApiStandin }> {
  const { epoch } = await leader.client.claimLeader({});
  const init = await leader.client.join({ epoch });
  const api = await startClusterApi(leader);
  await leader.client.joined({ epoch, adminKubeconfig: api.kubeconfig });
  return { epoch, init, api };
}

/** Runs openssl with `input` on stdin; returns stdout. */
export async function openssl(args: string[], input?: string | Buffer): Promise<string> {
  const result = await execa('openssl', args, { input, encoding: 'utf8' });
  return result.stdout;
}

/** kubeadm's CA hash of a PEM certificate, computed the way the kubeadm docs show, with openssl. */
export async function opensslCaHash(certPem: string): Promise<string> {
  const result = await execa('sh', ['-c', 'openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum'], {
    input: certPem,
  });
  return `sha256:${result.stdout.split(' ')[0]}`;
}

export interface ControllerProcess {
  child: ChildProcess;
  url: string;
  caCertPem: string;
  adminToken: string;
  stderr: () => string;
}

/** `node agent/main.ts controller serve` as a child process; resolves once it prints where it listens. */
/** `pke-agent controller ARGS` against a spawned controller, as an admin on its host would run it. */
export async function controllerCommand(
  proc: ControllerProcess,
  dataDir: string,
  args: string[],
): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const result = await execa(process.execPath, [AGENT_ENTRY, 'controller', ...args, '--url', proc.url, '--data-dir', dataDir], {
    reject: false,
    timeout: 30_000,
  });
  return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export async function spawnController(dataDir: string, port = 0, extraArgs: string[] = []): Promise<ControllerProcess> {
  const child = spawn(
    process.execPath,
    [AGENT_ENTRY, 'controller', 'serve', '--json', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, ...extraArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const listening = await new Promise<{ url: string; caCertFile: string; adminTokenFile: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`controller did not start within 20 s: ${stderr}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { url: string; caCertFile: string; adminTokenFile: string });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`controller exited ${code} before listening: ${stderr}`));
    });
  });
  return {
    child,
    url: listening.url,
    caCertPem: await readFile(listening.caCertFile, 'utf8'),
    adminToken: (await readFile(listening.adminTokenFile, 'utf8')).trim(),
    stderr: () => stderr,
  };
}

/** Kills a child by its pid (if still running) and waits for it to exit. */
export async function killProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
  if (!child || child.pid === undefined) return null;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  process.kill(child.pid, signal);
  return exited;
}

/** The ControllerRequestError a call fails with; any other outcome fails the test. */
export async function rejection(promise: Promise<unknown>): Promise<ControllerRequestError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ControllerRequestError)) throw new Error(`expected a ControllerRequestError, got ${String(error)}`);
  return error;
}
