import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentConfig, agentConfigSchema } from '../../agent/config/schema.ts';
import { silentLogger } from '../../agent/core/log.ts';
import { type RunningController, startController } from '../../agent/controller/controller.ts';
import { httpsClusterEtcd } from '../../agent/controller/kubernetes/cluster-etcd.ts';
import { VsphereClient } from '../../agent/controller/vsphere/client.ts';
import type { ClusterStatus, Placement, PkiFile } from '../../agent/protocol/api.ts';
import { AdminClient, createNodeClient, type NodeClient } from '../../agent/protocol/client.ts';
import { createUpgradeClients } from '../../agent/protocol/upgrade-client.ts';
import { runAgent, scratchDir } from '../helpers/cli.ts';
import { freePort } from '../../scripts/free-port.ts';
import { controlPlaneBinaries, type RealApiServer, type RealEtcd, startApiServer, startEtcd } from '../helpers/real-control-plane.ts';
import { inspectVm } from '../image/simulator.ts';
import { CLUSTER_DEFAULTS, NO_RETRY, registration, rejection } from '../controller/helpers.ts';
import { type SimulatorFixture, startSimulatorFixture, vsphereSkip } from './simulator-fixture.ts';

/**
 * An upgrade by rolling replacement on the controller: VMs cloned on the vCenter simulator, a
 * real etcd cluster and kube-apiserver as the cluster. The test plays what runs on the VMs: each
 * VM's agent reads its config from the VM's guestinfo (as the simulator's own client shows it),
 * registers with the VM's BIOS UUID and joins through the join slot; kubeadm join's etcd part
 * (member add); the kubelet's Node, Ready, reporting the version its config names (the version
 * of the template it was cloned from); `vip sync` on control-plane nodes (the view fetched; a
 * leaving node reports keepalived stopped).
 */
const skip = vsphereSkip ?? (controlPlaneBinaries.available ? undefined : controlPlaneBinaries.reason);
if (skip) console.warn(`rolling replacement tests skipped: ${skip}`);

const OLD = '1.31.2';
const NEW = '1.32.0';
const OLD_TEMPLATE = `pke-node-k8s-${OLD}`;
const NEW_TEMPLATE = `pke-node-k8s-${NEW}`;
const NEXT = '1.33.0';
const NEXT_TEMPLATE = `pke-node-k8s-${NEXT}`;
const PLACEMENT: Placement = {
  template: OLD_TEMPLATE,
  folder: '',
  resourcePool: 'DC0_C0',
  datastore: 'LocalDS_0',
  cpus: 2,
  memoryMiB: 2048,
};
const NAME = 'ru';
/**
 * The test's one API server stands for every control-plane node's, so it keeps an etcd member of
 * its own (its first), which no node's removal takes away.
 */
const API_ETCD = 'apiserver-etcd';
const cp = (n: number) => `${NAME}-cp-${n}`;
const worker = (n: number) => `${NAME}-workers-${n}`;

interface PlayedNode {
  moref: string;
  config: AgentConfig;
  client: NodeClient;
  joined: boolean;
  releasedVip: boolean;
}

describe.skipIf(skip)('an upgrade by rolling replacement (vCenter simulator, real etcd and kube-apiserver)', () => {
  const dir = scratchDir('replace-upgrade');
  const etcdUrls = new Map<string, string>();
  const played = new Map<string, PlayedNode>();
  let fx: SimulatorFixture;
  let vsphere: VsphereClient;
  let controller: RunningController;
  let admin: AdminClient;
  let etcd: RealEtcd;
  let server: RealApiServer;
  let pki: Record<PkiFile, string>;
  let nextIp = 11;
  let playError: unknown;

  const status = () => admin.status(NAME);
  const until = async (done: (s: ClusterStatus) => boolean, what: string, tries = 600): Promise<ClusterStatus> => {
    for (let i = 0; i < tries; i++) {
      const now = await status();
      if (done(now)) return now;
      if (playError) throw playError;
      await sleep(100);
    }
    const last = await status();
    throw new Error(
      `${what} did not happen: ${JSON.stringify({ upgrade: last.upgrade, nodes: last.nodes.map((n) => [n.name, n.state, n.vm?.moref]) })}`,
    );
  };

  /** The controller on `port` (0: a free one) with the data dir of the test, and its admin client. */
  async function startControllerAt(port: number): Promise<void> {
    controller = await startController({
      dataDir: path.join(dir.dir, 'controller'),
      host: '127.0.0.1',
      port,
      log: silentLogger,
      verifyStateTouches: true,
      provisioning: { intervalMs: 100, failedGraceMs: 0 },
      removals: {
        etcdEndpoint: (n) => etcdUrls.get(n.name) ?? `https://${n.primaryIp}:2379`,
        vipReleaseTimeoutMs: 10_000,
        peersTimeoutMs: 10_000,
        pollMs: 50,
      },
    });
    admin = new AdminClient({
      url: controller.url,
      caCert: controller.caCertPem,
      token: (await readFile(controller.adminTokenFile, 'utf8')).trim(),
      retry: NO_RETRY,
    });
  }

  /** Every VM's agent, round after round, until stopped. */
  function startPlaying(): () => Promise<void> {
    let on = true;
    const loop = (async () => {
      while (on) {
        await playRound().catch((error: unknown) => {
          playError = error;
        });
        await sleep(50);
      }
    })();
    return async () => {
      on = false;
      await loop;
    };
  }

  /** The Node as the kubelet of `version` reports it: registered, then Ready. */
  async function kubeletReports(name: string, version: string): Promise<void> {
    const created = await server.call('POST', '/api/v1/nodes', { metadata: { name } });
    if (created.code !== 201 && created.code !== 409) throw new Error(`Node ${name}: ${created.code} ${JSON.stringify(created.json)}`);
    const patched = await server.call(
      'PATCH',
      `/api/v1/nodes/${name}/status`,
      {
        status: {
          conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
          nodeInfo: { kubeletVersion: `v${version}` },
        },
      },
      'application/merge-patch+json',
    );
    if (patched.code !== 200) throw new Error(`Node ${name} status: ${patched.code} ${JSON.stringify(patched.json)}`);
  }

  /** The VM's agent config, from its guestinfo as the simulator's own client reads it. */
  async function guestConfig(name: string): Promise<AgentConfig> {
    const seen = await inspectVm(fx.sim, `/DC0/vm/${name}`);
    const encoded = seen.extraConfig['guestinfo.pke.config'];
    if (!encoded) throw new Error(`VM ${name} has no guestinfo.pke.config`);
    return agentConfigSchema.parse(YAML.parse(gunzipSync(Buffer.from(encoded, 'base64')).toString()));
  }

  /** A VM the controller cloned boots: its agent registers with the VM's BIOS UUID. */
  async function boot(name: string, vm: { moref: string; biosUuid: string }): Promise<PlayedNode> {
    const config = await guestConfig(name);
    const client = createNodeClient(config, { retry: NO_RETRY });
    await client.register({ ...registration(name, `10.10.0.${nextIp++}`), uuid: vm.biosUuid });
    const node: PlayedNode = { moref: vm.moref, config, client, joined: false, releasedVip: false };
    played.set(name, node);
    return node;
  }

  /** A joining node's bootstrap: its turn in the join slot, kubeadm join (etcd's member add on a control-plane node), Ready. */
  async function join(name: string, node: PlayedNode): Promise<void> {
    await node.client.join({}, { waitSeconds: 2 });
    if (node.config.role === 'master') etcdUrls.set(name, (await etcd.add(name)).clientUrl);
    await node.client.joined({});
    await kubeletReports(name, node.config.kubernetes.version);
    await node.client.ready({});
    node.joined = true;
  }

  /** One round of every VM's agent: new VMs boot and join; control-plane nodes run `vip sync`. */
  async function playRound(): Promise<void> {
    for (const seen of (await status()).nodes) {
      if (!seen.vm?.moref || seen.state === 'revoked' || seen.state === 'removed') continue;
      let node = played.get(seen.name);
      if (node && node.moref !== seen.vm.moref) {
        await node.client.close();
        node = undefined;
      }
      node ??= await boot(seen.name, seen.vm);
      if (!node.joined) await join(seen.name, node);
      // A node that handed its VIP over is on its way out (its token is revoked soon): its vip sync stops mattering.
      if (node.config.role === 'master' && !node.releasedVip) {
        const view = await node.client.controlPlane();
        if (view.nodes.find((n) => n.name === seen.name)?.leaving && !node.releasedVip) {
          await node.client.events({ events: [{ phase: 'vip-release', type: 'end', at: new Date().toISOString(), attempt: 1 }] });
          node.releasedVip = true;
        }
      }
    }
  }

  beforeAll(async () => {
    fx = await startSimulatorFixture();
    vsphere = await VsphereClient.connect(fx.connection);
    // Two templates as the image build leaves them: each says which Kubernetes it holds.
    const [base, folder, pool, datastore] = await Promise.all([
      vsphere.mustFind('vm', 'DC0_H0_VM0', 'template'),
      vsphere.mustFind('folder', '', 'folder'),
      vsphere.resourcePool('DC0_C0'),
      vsphere.mustFind('datastore', 'LocalDS_0', 'datastore'),
    ]);
    for (const [name, version] of [
      [OLD_TEMPLATE, OLD],
      [NEW_TEMPLATE, NEW],
      [NEXT_TEMPLATE, NEXT],
    ] as const)
      await vsphere.cloneVm({ template: base, name, folder, pool, datastore, extraConfig: { 'pke.image.kubernetes-version': version } });

    await startControllerAt(0);
    await admin.createCluster({
      ...CLUSTER_DEFAULTS,
      name: NAME,
      kubernetesVersion: OLD,
      controlPlaneEndpoint: { vip: '127.0.0.1', port: await freePort() },
      controlPlaneNodes: 2,
      controlPlanePlacement: PLACEMENT,
      pools: [{ name: 'workers', size: 1, placement: PLACEMENT }],
      provisioning: { maxReplacements: 1 },
    });
    await admin.setVsphere(NAME, fx.credentials);
    const cloned = await until((s) => s.nodes.filter((n) => n.vm?.moref).length === 3, 'three VMs');

    // The formation: cp-1 leads (kubeadm init: etcd, the API server, kubeadm's ClusterConfiguration), then the others join.
    const vmOf = (name: string) => cloned.nodes.find((n) => n.name === name)!.vm!;
    const leader = await boot(cp(1), vmOf(cp(1)));
    const { epoch } = await leader.client.claimLeader({});
    await leader.client.join({ epoch });
    pki = (await leader.client.pki()).files as Record<PkiFile, string>;
    etcd = await startEtcd(dir.dir, pki, [API_ETCD, cp(1)]);
    etcdUrls.set(cp(1), etcd.members[1]!.clientUrl);
    server = await startApiServer(dir.dir, pki, etcd, [], { port: leader.config.controlPlaneEndpoint.port });
    const clusterConfiguration = YAML.stringify({
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'ClusterConfiguration',
      kubernetesVersion: `v${OLD}`,
      controlPlaneEndpoint: `127.0.0.1:${leader.config.controlPlaneEndpoint.port}`,
      networking: { podSubnet: '10.244.0.0/16', serviceSubnet: '10.96.0.0/12' },
    });
    const uploaded = await server.call('POST', '/api/v1/namespaces/kube-system/configmaps', {
      metadata: { name: 'kubeadm-config', namespace: 'kube-system' },
      data: { ClusterConfiguration: clusterConfiguration },
    });
    expect(uploaded.code).toBe(201);
    await leader.client.joined({ epoch, adminKubeconfig: server.kubeconfig });
    await kubeletReports(cp(1), OLD);
    await leader.client.ready({});
    leader.joined = true;
    await playRound();
    await until((s) => s.nodes.filter((n) => n.state === 'ready').length === 3, 'three Ready nodes');
  }, 240_000);

  afterAll(async () => {
    await Promise.all([...played.values()].map((n) => n.client.close()));
    await admin?.close();
    await controller?.close();
    await server?.close();
    await etcd?.close();
    await vsphere?.close();
    await fx?.stop();
    dir.remove();
  });

  it('refuses a template that does not hold the new version, or is not there, naming --template; and a template for in place', async () => {
    const controllerFlags = ['--url', controller.url, '--data-dir', path.join(dir.dir, 'controller')];
    const wrong = await runAgent([
      ...['controller', 'cluster', 'upgrade', '--cluster', NAME, '--to', NEW],
      ...['--strategy', 'replace', '--template', OLD_TEMPLATE, ...controllerFlags],
    ]);
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr).toContain(
      `--template: controller POST /v1/clusters/${NAME}/upgrade: 400 bad-request: template ${OLD_TEMPLATE} holds Kubernetes ${OLD} (its pke.image.kubernetes-version), not ${NEW}`,
    );
    const missing = await rejection(admin.startUpgrade(NAME, { to: NEW, strategy: 'replace', template: 'no-such-template' }));
    expect(missing.context.status).toBe(400);
    expect(missing.message).toContain('vSphere: template /DC0/vm/no-such-template not found');
    const unmarked = await rejection(admin.startUpgrade(NAME, { to: NEW, strategy: 'replace', template: 'DC0_H0_VM1' }));
    expect(unmarked.message).toContain('template DC0_H0_VM1 does not say which Kubernetes it holds (no pke.image.kubernetes-version');
    const inPlace = await rejection(admin.startUpgrade(NAME, { to: NEW, template: NEW_TEMPLATE }));
    expect(inPlace.message).toContain('only a rolling replacement (strategy replace) clones a template');
    expect((await status()).upgrade).toBeUndefined();
  });

  it('replaces the control plane first, then the worker, one new node in and one old node out, and finishes on the new version', async () => {
    const before = await status();
    const oldVms = new Map(before.nodes.map((n) => [n.name, n.vm!.moref]));
    const started = await admin.startUpgrade(NAME, { to: NEW, strategy: 'replace', template: NEW_TEMPLATE });
    expect(started.strategy).toBe('replace');
    expect(started.nodes.map((n) => [n.name, n.mode])).toEqual([
      [cp(1), 'replace'],
      [cp(2), 'replace'],
      [worker(1), 'replace'],
    ]);
    // A node's own `pke-agent upgrade` is turned away: the controller replaces it.
    const inPlace = createUpgradeClients(played.get(worker(1))!.config, { retry: NO_RETRY }).upgrade;
    expect((await rejection(inPlace.slot(NEW, 0))).message).toContain('is being upgraded by rolling replacement');

    const stopPlaying = startPlaying();
    const done = await until((s) => s.upgrade?.finishedAt !== undefined, 'the rolling replacement', 1200).finally(stopPlaying);

    // Each old node was replaced by a new one with the pool's lowest number that no node of the upgrade has.
    expect(done.upgrade?.nodes.map((n) => [n.name, n.state, n.replacement])).toEqual([
      [cp(1), 'upgraded', cp(3)],
      [cp(2), 'upgraded', cp(4)],
      [worker(1), 'upgraded', worker(2)],
    ]);
    for (const n of done.upgrade!.nodes) expect(n.seconds).toBeGreaterThan(0);
    // Exactly the pools' sizes are left: no VM cloned twice, none left over.
    const live = done.nodes.filter((n) => n.vm?.moref && n.state !== 'removed');
    expect(live.map((n) => n.state)).toEqual(['ready', 'ready', 'ready']);
    expect(done.provisioning?.error).toBeUndefined();
    expect(live.map((n) => [n.name, n.vm?.template]).sort()).toEqual([
      [cp(3), NEW_TEMPLATE],
      [cp(4), NEW_TEMPLATE],
      [worker(2), NEW_TEMPLATE],
    ]);
    // The old VMs are gone from vSphere; the new ones' configs name the new version.
    for (const moref of oldVms.values())
      await expect(vsphere.vmInfo({ type: 'VirtualMachine', value: moref })).rejects.toThrow(/ManagedObjectNotFound/);
    for (const n of live) expect((await guestConfig(n.name)).kubernetes.version).toBe(NEW);
    // The worker's replacement came only after the control plane was replaced: no kubelet newer than an API server.
    const cpDone = Date.parse(done.upgrade!.nodes[1]!.upgradedAt!);
    const workerStarted = Date.parse(done.upgrade!.nodes[2]!.startedAt!);
    expect(workerStarted).toBeGreaterThanOrEqual(cpDone);

    // kubeadm's ClusterConfiguration names the new version (a control-plane join deploys it), the rest as it was.
    const config = await server.call('GET', '/api/v1/namespaces/kube-system/configmaps/kubeadm-config');
    const clusterConfiguration = YAML.parse(config.json.data.ClusterConfiguration);
    expect(clusterConfiguration.kubernetesVersion).toBe(`v${NEW}`);
    expect(clusterConfiguration.networking).toEqual({ podSubnet: '10.244.0.0/16', serviceSubnet: '10.96.0.0/12' });

    // etcd holds the new control plane's members only; the old Nodes are gone from the API.
    const etcdClient = httpsClusterEtcd({
      caPem: pki['etcd/ca.crt'],
      certPem: etcd.client.certPem,
      keyPem: etcd.client.keyPem,
      endpoints: [cp(3), cp(4)].map((name) => etcdUrls.get(name)!),
    });
    try {
      expect((await etcdClient.members()).map((m) => m.name).sort()).toEqual([API_ETCD, cp(3), cp(4)]);
    } finally {
      await etcdClient.close();
    }
    const nodes = await server.call('GET', '/api/v1/nodes');
    expect((nodes.json.items as { metadata: { name: string } }[]).map((n) => n.metadata.name).sort()).toEqual([cp(3), cp(4), worker(2)]);

    // `controller status` as the operator reads it.
    const shownStatus = await runAgent([
      'controller',
      'status',
      '--cluster',
      NAME,
      '--url',
      controller.url,
      '--data-dir',
      path.join(dir.dir, 'controller'),
    ]);
    expect(shownStatus.stdout).toMatch(
      new RegExp(`upgrade ${OLD} -> ${NEW} by replacement from ${NEW_TEMPLATE}: 3/3 nodes upgraded, finished at `),
    );
    expect(shownStatus.stdout).toMatch(new RegExp(`${cp(1)} +master +replaced by ${cp(3)} +upgraded`));

    // The cluster now runs the new version, and clones for it come from the new template.
    const shown = await admin.showCluster(NAME);
    expect(shown.spec.kubernetesVersion).toBe(NEW);
    expect(shown.spec.controlPlanePlacement?.template).toBe(NEW_TEMPLATE);
    expect(shown.spec.pools[0]?.placement?.template).toBe(NEW_TEMPLATE);
  }, 240_000);

  it('takes up where it was after a controller restart: the replacement cloned before it is adopted, not cloned again', async () => {
    await admin.startUpgrade(NAME, { to: NEXT, strategy: 'replace', template: NEXT_TEMPLATE });
    // cp-3 goes first; its replacement takes the lowest number free of the upgrade, cp-1.
    const cloned = await until(
      (s) => s.nodes.some((n) => n.name === cp(1) && n.state !== 'removed' && n.vm?.moref),
      'the first replacement VM',
    );
    const firstVm = cloned.nodes.find((n) => n.name === cp(1))!.vm!.moref;
    const port = Number(new URL(controller.url).port);
    await admin.close();
    await controller.close();
    await startControllerAt(port);

    const stopPlaying = startPlaying();
    const done = await until((s) => s.upgrade?.finishedAt !== undefined, 'the rolling replacement after the restart', 1200).finally(
      stopPlaying,
    );
    expect(done.upgrade?.nodes.map((n) => [n.name, n.state, n.replacement])).toEqual([
      [cp(3), 'upgraded', cp(1)],
      [cp(4), 'upgraded', cp(2)],
      [worker(2), 'upgraded', worker(1)],
    ]);
    expect(done.nodes.find((n) => n.name === cp(1) && n.state === 'ready')?.vm?.moref).toBe(firstVm);
    expect(done.nodes.filter((n) => n.vm?.moref && n.state !== 'removed').map((n) => [n.name, n.state])).toEqual([
      [cp(1), 'ready'],
      [cp(2), 'ready'],
      [worker(1), 'ready'],
    ]);
    expect((await admin.showCluster(NAME)).spec.kubernetesVersion).toBe(NEXT);
  }, 240_000);
});
