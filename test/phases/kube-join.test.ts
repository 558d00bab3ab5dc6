import { freePort } from '../../scripts/free-port.ts';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { caCertHash, createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { CommandError, PkeError } from '../../agent/core/errors.ts';
import { createKubeJoinPhase } from '../../agent/phases/kube-join.ts';
import type { JoinGrant } from '../../agent/protocol/api.ts';
import { ControllerRequestError } from '../../agent/protocol/errors.ts';
import {
  agentConfig,
  commandLines,
  createStandinNode,
  fakeController,
  initLeader,
  markHostPrepared,
  phaseContext,
  runThroughRunner,
  withEnv,
  writeSharedPki,
  type Leader,
  type StandinNode,
} from '../helpers/standins.ts';

const notReady = () =>
  new ControllerRequestError('POST', '/v1/clusters/prod-a1b2/join', 409, 'not-initialized', 'the cluster is not initialized yet');

describe('kube-join', () => {
  let pki: Record<string, string>;
  let clusterDir: string;
  let leader: Leader;
  const nodes: StandinNode[] = [];

  beforeAll(async () => {
    pki = await createClusterPki();
    clusterDir = await mkdtemp(path.join(tmpdir(), 'pke-clusters-'));
    leader = await initLeader(pki, clusterDir);
  });
  afterAll(async () => {
    await leader?.node.cleanup();
    await rm(clusterDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.cleanup();
  });

  function grant(overrides: Partial<JoinGrant> = {}): JoinGrant {
    return {
      mode: 'join',
      token: leader.token,
      tokenExpiresAt: new Date(Date.now() + 900_000).toISOString(),
      caCertHash: caCertHash(pki['ca.crt'] ?? ''),
      endpoint: `127.0.0.1:${leader.port}`,
      ...overrides,
    };
  }

  async function joiner(role: 'master' | 'worker', name: string) {
    const node = await createStandinNode();
    nodes.push(node);
    await markHostPrepared(node);
    if (role === 'master') await writeSharedPki(node, pki);
    const config = agentConfig({
      role,
      pool: role === 'master' ? 'control-plane' : 'workers',
      nodeName: name,
      controlPlaneEndpoint: { vip: '127.0.0.1', port: leader.port },
    });
    const outputs = {
      register: { nodeName: name, primaryIp: '10.10.0.12', interface: 'eth0', ips: ['10.10.0.12'] },
      elect: { leader: false },
    };
    return { node, config, outputs };
  }

  it('retries a control-plane join past "too many learner members" with backoff, a fresh grant and a reset each time', async () => {
    const { node, config, outputs } = await joiner('master', 'cp-2');
    const controller = fakeController({ joins: [notReady(), grant()] });
    const ctx = phaseContext(node, config, controller, outputs);
    const phase = createKubeJoinPhase({ initialDelayMs: 200, maxDelayMs: 400, attempts: 4 });
    expect(phase.appliesTo?.(ctx)).toBe(true);

    const env = {
      PKE_STANDIN_KUBEADM_FAIL:
        'join:error creating local etcd static pod manifest file: etcdserver: too many learner members in cluster:2',
      PKE_STANDIN_APISERVER_LISTEN: `127.0.0.1:${await freePort()}`,
      PKE_STANDIN_CLUSTER_DIR: clusterDir,
    };
    const record = await withEnv(env, () => runThroughRunner(phase, ctx));

    expect(record).toMatchObject({ state: 'done', attempts: 3, output: { controlPlane: true } });
    const kubeadm = node.calls('kubeadm');
    expect(commandLines(kubeadm)).toEqual(['kubeadm join', 'kubeadm reset', 'kubeadm join', 'kubeadm reset', 'kubeadm join']);
    // One "not yet" from the controller, then a fresh grant for each of the three attempts.
    expect(controller.joinRequests).toEqual([[{}, { waitSeconds: 30 }], ...Array(3).fill([{}, { waitSeconds: 30 }])]);
    const gap = (from: number, to: number) => Date.parse(kubeadm[to]?.time ?? '') - Date.parse(kubeadm[from]?.time ?? '');
    expect(gap(1, 2)).toBeGreaterThanOrEqual(200);
    expect(gap(3, 4)).toBeGreaterThanOrEqual(400);
    const retries = node.logLines.filter((l) => l.event === 'kube-join.retry');
    expect(retries.map((l) => l.error)).toEqual([
      expect.stringContaining('too many learner members in cluster'),
      expect.stringContaining('too many learner members in cluster'),
    ]);
    expect(node.logLines.some((l) => l.event === 'kube-join.waiting')).toBe(true);

    expect(await node.host.readText('/etc/kubernetes/pki/ca.key')).toBe(pki['ca.key']);
    expect(await node.host.fileMode('/etc/kubernetes/pke/kubeadm-join.yaml')).toBe(0o600);
    expect(await phase.isDone?.(ctx)).toBe(true);
    await phase.run(ctx);
    expect(node.calls('kubeadm')).toHaveLength(5);
  });

  it('joins a worker whose kubelet certificate names it, signed by the cluster CA', async () => {
    const { node, config, outputs } = await joiner('worker', 'w-1');
    const phase = createKubeJoinPhase();
    const ctx = phaseContext(node, config, fakeController({ joins: [grant()] }), outputs);
    expect(await withEnv({ PKE_STANDIN_CLUSTER_DIR: clusterDir }, () => phase.run(ctx))).toEqual({ controlPlane: false });

    const kubelet = parse((await node.host.readText('/etc/kubernetes/kubelet.conf')) ?? '') as {
      clusters: { cluster: { server: string } }[];
      users: { user: Record<string, string> }[];
    };
    expect(kubelet.clusters[0]?.cluster.server).toBe(`https://127.0.0.1:${leader.port}`);
    // As the kubelet keeps it: the certificate (and key) in the file kubelet.conf names.
    const certFile = kubelet.users[0]?.user['client-certificate'] ?? '';
    expect(certFile).toBe('/var/lib/kubelet/pki/kubelet-client-current.pem');
    const cert = new X509Certificate((await node.host.readText(certFile)) ?? '');
    expect(cert.subject).toBe('O=system:nodes\nCN=system:node:w-1');
    expect(cert.verify(new X509Certificate(pki['ca.crt'] ?? '').publicKey)).toBe(true);
    expect(await node.host.readText('/var/lib/kubelet/kubeadm-flags.env')).toContain('--node-ip=10.10.0.12');
    expect(await phase.isDone?.(ctx)).toBe(true);
  });

  it("asks for a fresh grant when the cluster does not know the last one's token", async () => {
    const { node, config, outputs } = await joiner('worker', 'w-4');
    const controller = fakeController({ joins: [grant({ token: 'zzzzzz.0123456789abcdef' }), grant()] });
    const phase = createKubeJoinPhase({ initialDelayMs: 50 });
    const ctx = phaseContext(node, config, controller, outputs);
    const record = await withEnv({ PKE_STANDIN_CLUSTER_DIR: clusterDir }, () => runThroughRunner(phase, ctx));
    expect(record).toMatchObject({ state: 'done', attempts: 2, output: { controlPlane: false } });
    expect(controller.joinRequests).toHaveLength(2);
    // Discovery fails in kubeadm's preflight, which leaves nothing to reset.
    expect(commandLines(node.calls('kubeadm'))).toEqual(['kubeadm join', 'kubeadm join']);
    expect(node.logLines.find((l) => l.event === 'kube-join.retry')?.error).toContain(
      'could not find a JWS signature in the cluster-info ConfigMap for token ID "zzzzzz"',
    );
    expect(JSON.stringify(node.logLines)).not.toContain('0123456789abcdef');
  });

  it('fails at once, with command, exit code and stderr, on an error a retry cannot fix', async () => {
    const { node, config, outputs } = await joiner('worker', 'w-2');
    const phase = createKubeJoinPhase({ initialDelayMs: 50 });
    const wrongPin = `sha256:${'0'.repeat(64)}`;
    const ctx = phaseContext(node, config, fakeController({ joins: [grant({ caCertHash: wrongPin })] }), outputs);

    const error = await withEnv({ PKE_STANDIN_CLUSTER_DIR: clusterDir }, () => runThroughRunner(phase, ctx)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    const { context } = error as CommandError;
    expect(context.command).toBe('kubeadm join --config /etc/kubernetes/pke/kubeadm-join.yaml');
    expect(context.exitCode).toBe(1);
    expect(context.stderrTail).toContain('cluster CA found in cluster-info ConfigMap is invalid: none of the public keys');
    expect(node.calls('kubeadm')).toHaveLength(1);
    expect(await phase.isDone?.(ctx)).toBe(false);
  });

  it('stops kubeadm join when the run ends, leaving its marker for the reset', async () => {
    const { node, config, outputs } = await joiner('worker', 'w-5');
    const run = new AbortController();
    const ctx = { ...phaseContext(node, config, fakeController({ joins: [grant()] }), outputs), signal: run.signal };
    const running = withEnv({ PKE_STANDIN_CLUSTER_DIR: clusterDir, PKE_STANDIN_KUBEADM_JOIN_MS: '8000' }, () =>
      createKubeJoinPhase().run(ctx),
    ).catch((e: unknown) => e);
    await vi.waitFor(() => expect(node.calls('kubeadm').length).toBe(1), { timeout: 5000, interval: 50 });
    run.abort(new PkeError('bootstrap interrupted by SIGTERM'));
    const failure = await running;
    expect((failure as PkeError).message).toBe('bootstrap interrupted by SIGTERM');
    expect(await node.host.exists('/etc/kubernetes/kubelet.conf')).toBe(false);
    expect(await node.host.exists('/var/lib/pke-agent/join-started')).toBe(true);
  });

  it('gives up waiting for a grant after its bound, saying what the controller said', async () => {
    const { node, config, outputs } = await joiner('worker', 'w-3');
    const phase = createKubeJoinPhase({ grantWaitMs: 300, grantPollSeconds: 1 });
    const ctx = phaseContext(node, config, fakeController({ joins: [notReady()] }), outputs);
    await expect(phase.run(ctx)).rejects.toThrow(
      /no join grant after 0 s; the controller last said: controller POST \/v1\/clusters\/prod-a1b2\/join: 409 not-initialized/,
    );
    expect(node.calls('kubeadm')).toEqual([]);
  });
});
