import { freePort } from '../../scripts/free-port.ts';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAdminKubeconfig } from '../../agent/controller/kubernetes/cluster-api.ts';
import { caCertHash, createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { CommandError, PkeError } from '../../agent/core/errors.ts';
import { kubeInitPhase } from '../../agent/phases/kube-init.ts';
import type { JoinGrant } from '../../agent/protocol/api.ts';
import { httpsRequest } from '../standins/standin-https.ts';
import {
  agentConfig,
  commandLines,
  createStandinNode,
  existingInterface,
  fakeController,
  markHostPrepared,
  phaseContext,
  writeSharedPki,
  type StandinNode,
} from '../helpers/standins.ts';

const TOKEN = 'abcdef.0123456789abcdef';
const iface = existingInterface();

describe.skipIf(!iface)('kube-init', () => {
  let pki: Record<string, string>;
  let clusterDir: string;
  let node: StandinNode;
  let port: number;

  beforeAll(async () => {
    pki = await createClusterPki();
    clusterDir = await mkdtemp(path.join(tmpdir(), 'pke-clusters-'));
  });
  afterAll(async () => {
    await rm(clusterDir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    node = await createStandinNode();
    await markHostPrepared(node);
    await writeSharedPki(node, pki);
    port = await freePort();
    vi.stubEnv('PKE_STANDIN_APISERVER_LISTEN', `127.0.0.1:${port}`);
    vi.stubEnv('PKE_STANDIN_CLUSTER_DIR', clusterDir);
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await node.cleanup();
  });

  function setup(joins?: (JoinGrant | Error)[]) {
    const config = agentConfig({ nodeName: 'cp-1', controlPlaneEndpoint: { vip: '127.0.0.1', port, interface: iface } });
    const grant: JoinGrant = {
      mode: 'init',
      token: TOKEN,
      tokenExpiresAt: new Date(Date.now() + 2 * 3600_000).toISOString(),
      caCertHash: caCertHash(pki['ca.crt'] ?? ''),
      endpoint: `127.0.0.1:${port}`,
    };
    const controller = fakeController({
      joins: joins ?? [grant],
      view: { vip: '127.0.0.1', port, virtualRouterId: 51, leader: 'cp-1', nodes: [{ name: 'cp-1', primaryIp: '10.10.0.11' }] },
    });
    const ctx = phaseContext(node, config, controller, {
      register: { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: iface ?? 'eth0', ips: ['10.10.0.11'] },
      elect: { leader: true, epoch: 7 },
    });
    return { ctx, controller, grant };
  }

  it('runs kubeadm init once, with keepalived started alongside, and never again on a node where it completed', async () => {
    const { ctx, controller } = setup();
    expect(kubeInitPhase.appliesTo?.(ctx)).toBe(true);
    expect(await kubeInitPhase.isDone?.(ctx)).toBe(false);

    const output = await kubeInitPhase.run(ctx);
    expect(output).toEqual({ kubernetesVersion: '1.31.2', kubeadmApiVersion: 'kubeadm.k8s.io/v1beta4' });
    expect(controller.joinRequests).toEqual([[{ epoch: 7 }]]);
    const order = commandLines(node.calls(), 3).filter((c) => c.startsWith('kubeadm') || /^systemctl (start|enable)/.test(c));
    expect(order.sort()).toEqual([`kubeadm init --config`, 'systemctl start keepalived']);
    expect(node.calls('kubeadm')[0]?.argv).toEqual([
      'init',
      '--config',
      node.host.file('/etc/kubernetes/pke/kubeadm-init.yaml'),
      '--skip-token-print',
    ]);
    expect(await node.host.fileMode('/etc/kubernetes/pke/kubeadm-init.yaml')).toBe(0o600);
    // The leader's config before init takes the VIP at once, and is run but never enabled.
    expect(await node.host.readText('/etc/keepalived/keepalived.conf')).toMatch(/state MASTER\n[\s\S]*priority 255\n/);
    expect(await node.host.service.states(['keepalived'])).toEqual({ keepalived: { active: true, enabled: false } });
    for (const file of [
      '/etc/kubernetes/admin.conf',
      '/etc/kubernetes/super-admin.conf',
      '/etc/kubernetes/manifests/etcd.yaml',
      '/var/lib/pke-agent/init-done',
    ]) {
      expect(await node.host.exists(file)).toBe(true);
    }
    expect(await node.host.exists('/var/lib/pke-agent/init-started')).toBe(false);

    // kubeadm's output reached the log, the token did not.
    const output_lines = node.logLines.filter((l) => l.event === 'kubeadm.output').map((l) => String(l.line));
    expect(output_lines).toContain('Your Kubernetes control-plane has initialized successfully!');
    expect(JSON.stringify(node.logLines)).not.toContain(TOKEN);

    // kubeadm put the grant's token into the cluster as a bootstrap-token Secret.
    const admin = parseAdminKubeconfig((await node.host.readText('/etc/kubernetes/admin.conf')) ?? '');
    expect(admin.server).toBe(`https://127.0.0.1:${port}`);
    const secret = await httpsRequest(`${admin.server}/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef`, {
      ca: admin.caPem,
      cert: admin.clientCertPem,
      key: admin.clientKeyPem,
    });
    expect(secret.status).toBe(200);
    const data = (JSON.parse(secret.body) as { data: Record<string, string> }).data;
    expect(Buffer.from(data['token-secret'] ?? '', 'base64').toString()).toBe('0123456789abcdef');
    const expiresInHours = (Date.parse(Buffer.from(data.expiration ?? '', 'base64').toString()) - Date.now()) / 3600_000;
    expect(expiresInHours).toBeGreaterThan(1.9);

    expect(await kubeInitPhase.isDone?.(ctx)).toBe(true);
    await kubeInitPhase.run(ctx);
    expect(node.calls('kubeadm')).toHaveLength(1);
    expect(node.logLines.map((l) => l.event)).toContain('kube-init.already-done');
  });

  it('takes the init material the lease came with, asking the controller nothing more', async () => {
    const { ctx, controller, grant } = setup([]);
    const withLease = { ...ctx, lease: { ...ctx.lease, initGrant: (epoch: number) => (epoch === 7 ? grant : undefined) } };
    await kubeInitPhase.run(withLease);
    expect(controller.joinRequests).toEqual([]);
    expect(node.calls('kubeadm')[0]?.argv[0]).toBe('init');
  });

  it('resets before retrying an init it started, keeping the shared CAs', async () => {
    vi.stubEnv('PKE_STANDIN_KUBEADM_FAIL', 'init:timed out waiting for the condition:1');
    const { ctx } = setup();
    const failure = await kubeInitPhase.run(ctx).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CommandError);
    expect((failure as CommandError).context).toMatchObject({ command: expect.stringContaining('kubeadm init'), exitCode: 1 });
    expect((failure as CommandError).context.stderrTail).toContain(
      'error execution phase wait-control-plane: timed out waiting for the condition',
    );
    expect(kubeInitPhase.retry?.retryable(failure)).toBe(true);
    expect(await node.host.exists('/var/lib/pke-agent/init-started')).toBe(true);
    expect(await kubeInitPhase.isDone?.(ctx)).toBe(false);

    await kubeInitPhase.run(ctx);
    expect(commandLines(node.calls('kubeadm'))).toEqual(['kubeadm init', 'kubeadm reset', 'kubeadm init']);
    expect(await node.host.readText('/etc/kubernetes/pki/ca.crt')).toBe(pki['ca.crt']);
    expect(await node.host.exists('/var/lib/pke-agent/init-done')).toBe(true);
  });

  it('stops and undoes the init when keepalived cannot start, and fails naming it', async () => {
    vi.stubEnv('PKE_STANDIN_SYSTEMD_UNITS', 'containerd kubelet');
    vi.stubEnv('PKE_STANDIN_KUBEADM_INIT_MS', '5000');
    const { ctx } = setup();
    const failure = await kubeInitPhase.run(ctx).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CommandError);
    expect((failure as CommandError).context).toMatchObject({ command: 'systemctl start keepalived', exitCode: 5 });
    expect(kubeInitPhase.retry?.retryable(failure)).toBe(false);
    // kubeadm was stopped before it finished (often before it got far enough to log its call),
    // then reset; the shared CAs stay for the next attempt.
    expect(commandLines(node.calls('kubeadm')).at(-1)).toBe('kubeadm reset');
    expect(node.logLines.map((l) => String(l.line ?? ''))).not.toContain('Your Kubernetes control-plane has initialized successfully!');
    for (const file of ['/var/lib/pke-agent/init-started', '/var/lib/pke-agent/init-done', '/etc/kubernetes/admin.conf']) {
      expect(await node.host.exists(file)).toBe(false);
    }
    expect(await node.host.readText('/etc/kubernetes/pki/ca.crt')).toBe(pki['ca.crt']);
  });

  it('stops kubeadm init when the run ends (the lease lost), leaving its marker for the reset', async () => {
    vi.stubEnv('PKE_STANDIN_KUBEADM_INIT_MS', '8000');
    const { ctx } = setup();
    const run = new AbortController();
    const running = kubeInitPhase.run({ ...ctx, signal: run.signal }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(node.calls('kubeadm').length).toBe(1), { timeout: 5000, interval: 50 });
    run.abort(new PkeError('lost the leader lease: epoch 7 was fenced'));
    const failure = await running;
    expect(failure).toBeInstanceOf(PkeError);
    expect((failure as PkeError).message).toBe('lost the leader lease: epoch 7 was fenced');
    expect(node.logLines.map((l) => String(l.line ?? ''))).not.toContain('Your Kubernetes control-plane has initialized successfully!');
    expect(await node.host.exists('/var/lib/pke-agent/init-done')).toBe(false);
    expect(await node.host.exists('/var/lib/pke-agent/init-started')).toBe(true);
    expect(await kubeInitPhase.isDone?.(ctx)).toBe(false);
  });

  it('does not reset when its failed attempt never got to run kubeadm init', async () => {
    const { ctx, grant } = setup([new PkeError('controller unavailable', { context: { status: 503 } })]);
    await expect(kubeInitPhase.run(ctx)).rejects.toThrow('controller unavailable');
    expect(node.calls('kubeadm')).toEqual([]);

    const retry = setup([grant]);
    await kubeInitPhase.run(retry.ctx);
    expect(commandLines(node.calls('kubeadm'))).toEqual(['kubeadm init']);
  });

  it('leaves files it did not make to kubeadm preflight, and does not mark a preflight failure as started', async () => {
    await node.host.writeFile('/etc/kubernetes/manifests/kube-apiserver.yaml', 'left by someone else\n');
    const { ctx } = setup();
    expect(await kubeInitPhase.isDone?.(ctx)).toBe(false);
    const failure = (await kubeInitPhase.run(ctx).catch((e: unknown) => e)) as CommandError;
    expect(failure.context.stderrTail).toContain('[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]');
    expect(kubeInitPhase.retry?.retryable(failure)).toBe(false);
    expect(await node.host.exists('/var/lib/pke-agent/init-started')).toBe(false);

    await kubeInitPhase.run(ctx).catch(() => undefined);
    expect(commandLines(node.calls('kubeadm'))).toEqual(['kubeadm init', 'kubeadm init']);
    expect(await node.host.readText('/etc/kubernetes/manifests/kube-apiserver.yaml')).toBe('left by someone else\n');
  });

  it('takes an earlier init, made before the journal knew, as done', async () => {
    for (const file of [
      'admin.conf',
      'manifests/kube-apiserver.yaml',
      'manifests/kube-controller-manager.yaml',
      'manifests/kube-scheduler.yaml',
      'manifests/etcd.yaml',
    ]) {
      await node.host.writeFile(`/etc/kubernetes/${file}`, 'from an earlier init\n');
    }
    const { ctx } = setup();
    expect(await kubeInitPhase.isDone?.(ctx)).toBe(true);
    await kubeInitPhase.run(ctx);
    expect(node.calls('kubeadm')).toEqual([]);
  });
});
