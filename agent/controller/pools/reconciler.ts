import path from 'node:path/posix';
import { errorMessage } from '../../core/errors.ts';
import { SerialPasses } from '../../core/serial-passes.ts';
import { type Placement, vsphereCredentialsSchema } from '../../protocol/api.ts';
import { deleteJoinToken, revokeNode } from '../auth/revoke-node.ts';
import { type NodeMachines, TEMPLATE_VERSION_KEY } from '../day-two/machines.ts';
import { drainNode } from '../kubernetes/drain.ts';
import { issueNodeConfig } from '../node-config/issue.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState, NodeState } from '../store/state.ts';
import { VsphereClient } from '../vsphere/client.ts';
import { vsphereConnection } from '../vsphere/connection.ts';
import type { Moref } from '../vsphere/soap.ts';
import { type DesiredVm, desiredVms, stalledReason, surplusVms } from './desired.ts';

/**
 * Keeps each provisioned cluster's VMs as its spec says: clones what is missing with the
 * guestinfo node-config renders (adopting a VM of that name that is already there, so a
 * restart mid-way makes no duplicate), powers it on and records its managed object id and
 * BIOS UUID; replaces a worker whose bootstrap failed or stalled, a bounded number of times;
 * drains, deletes and destroys the workers a shrunk pool no longer wants. One pass at a time
 * per cluster; a change during a pass runs another after it.
 */

export interface ReconcilerOptions {
  /** Between passes over every provisioned cluster (stalls and failures are noticed on it). */
  intervalMs: number;
  /** How many VMs are cloned at once. */
  parallel: number;
  /** How long a drain on shrink may wait for evictions. */
  drainTimeoutMs: number;
  /** A failed phase with no report after it for this long is final. */
  failedGraceMs: number;
}

export const DEFAULT_RECONCILER_OPTIONS: ReconcilerOptions = {
  intervalMs: 5_000,
  parallel: 8,
  drainTimeoutMs: 300_000,
  failedGraceMs: 10_000,
};

interface Resolved {
  template: Moref;
  folder: Moref;
  folderPath: string;
  pool: Moref;
  datastore?: Moref;
  network?: { moref: Moref; name: string };
}

export class PoolReconciler implements NodeMachines {
  private readonly runtime: ControllerRuntime;
  private readonly options: ReconcilerOptions;
  private readonly passes: SerialPasses;
  private readonly sessions = new Map<string, { key: string; client: Promise<VsphereClient> }>();
  private timer: NodeJS.Timeout | undefined;

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  constructor(runtime: ControllerRuntime, options: Partial<ReconcilerOptions> = {}) {
    this.runtime = runtime;
    this.options = { ...DEFAULT_RECONCILER_OPTIONS, ...options };
    this.passes = new SerialPasses(async (clusterId) => {
      const cluster = this.runtime.store.state.clusters[clusterId];
      if (cluster?.spec.provisioning) await this.pass(cluster);
    });
  }

  /** Passes over every provisioned cluster now (a restart takes up where it was) and then on the interval. */
  start(): void {
    const all = () => {
      for (const cluster of Object.values(this.runtime.store.state.clusters)) if (cluster.spec.provisioning) this.kick(cluster.id);
    };
    all();
    this.timer = setInterval(all, this.options.intervalMs);
    this.timer.unref();
  }

  kick(clusterId: string): void {
    this.passes.kick(clusterId);
  }

  /** Settles when no pass runs for the cluster (tests, and the lab's progress). */
  idle(clusterId: string): Promise<void> {
    return this.passes.idle(clusterId);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.passes.close();
    await Promise.all([...this.sessions.values()].map(async (s) => (await s.client.catch(() => undefined))?.close()));
    this.sessions.clear();
  }

  private async pass(cluster: ClusterState): Promise<void> {
    let error: string | undefined;
    try {
      const client = await this.session(cluster);
      if (!client) error = 'no vCenter connection: set it with `pke-agent controller cluster vsphere`';
      else {
        const desired = desiredVms(cluster);
        const resolved = new Map<string, Promise<Resolved>>();
        const resolve = (placement: Placement) => {
          const key = JSON.stringify(placement);
          if (!resolved.has(key)) resolved.set(key, resolvePlacement(client, placement));
          return resolved.get(key)!;
        };
        const failures: string[] = [];
        await eachLimited(desired, this.options.parallel, async (vm) => {
          try {
            await this.ensure(client, cluster, vm, await resolve(vm.placement));
          } catch (e) {
            failures.push(`${vm.name}: ${errorMessage(e)}`);
            this.runtime.log.warn('pool.vm.failed', { cluster: cluster.id, node: vm.name, error: errorMessage(e) });
          }
        });
        for (const node of surplusVms(cluster, desired)) {
          try {
            await this.remove(client, cluster, node);
          } catch (e) {
            failures.push(`${node.name}: ${errorMessage(e)}`);
            this.runtime.log.warn('pool.vm.remove-failed', { cluster: cluster.id, node: node.name, error: errorMessage(e) });
          }
        }
        error = failures[0];
      }
    } catch (e) {
      error = errorMessage(e);
      this.runtime.log.warn('pool.pass.failed', { cluster: cluster.id, error });
    }
    if (cluster.provisioningError !== error) {
      this.runtime.store.mutate((_, touch) => {
        cluster.provisioningError = error;
        touch.cluster(cluster.id);
      });
    }
  }

  /** The cluster's vCenter session, made again when its stored connection changed; undefined while none is set. */
  private async session(cluster: ClusterState): Promise<VsphereClient | undefined> {
    const text = await this.runtime.dataDir.readVsphereCredentials(cluster.id);
    if (text === undefined) return undefined;
    const current = this.sessions.get(cluster.id);
    if (current?.key === text) {
      const client = await current.client.catch(() => undefined);
      if (client) return client;
    }
    if (current) void current.client.then((c) => c.close()).catch(() => undefined);
    const client = VsphereClient.connect(vsphereConnection(vsphereCredentialsSchema.parse(JSON.parse(text))));
    this.sessions.set(cluster.id, { key: text, client });
    return client;
  }

  private async ensure(client: VsphereClient, cluster: ClusterState, want: DesiredVm, where: Resolved): Promise<void> {
    const node = cluster.nodes[want.name];
    // `controller node remove` has it: provisioning clones the name again once that is done.
    if (node?.removal !== undefined && node.removal.state !== 'done') return;
    const live = node !== undefined && node.revokedAt === undefined;
    if (live && node.vmError !== undefined) return;
    if (live && node.vm !== undefined) {
      if (node.vm.ip === undefined) await this.refreshIp(client, cluster, node);
      if (want.role !== 'worker') return;
      const spec = cluster.spec.provisioning!;
      const reason = stalledReason(node, Date.now(), { ...spec, failedGraceMs: this.options.failedGraceMs });
      if (reason !== undefined) await this.replace(client, cluster, node, reason, spec.maxReplacements);
      if (cluster.nodes[want.name]?.vm !== undefined) return;
    }
    if (!stillWanted(cluster, want.name)) return;
    const inventoryName = path.join(where.folderPath, want.name);
    const existing = await client.find('vm', inventoryName);
    const current = cluster.nodes[want.name];
    if (existing && current && current.revokedAt === undefined && current.tokens.length > 0) {
      // Cloned before a restart (its token was recorded before the clone): take it up, do not clone again.
      const info = await client.vmInfo(existing);
      if (info.powerState !== 'poweredOn') {
        await this.configure(client, existing, want);
        await client.powerOn(existing, want.name);
      }
      this.record(cluster, want, existing, info.biosUuid, info.ipAddress);
      this.runtime.log.info('pool.vm.adopted', { cluster: cluster.id, node: want.name, vm: existing.value });
      return;
    }
    if (existing) {
      // A VM of that name whose tokens were revoked (a replacement cut short): it is not trusted.
      await destroyVm(client, existing, want.name);
    }
    if (!stillWanted(cluster, want.name)) return;
    const started = Date.now();
    const carried = current?.vmReplacements;
    const config = await issueNodeConfig(
      this.runtime,
      cluster,
      { name: want.name, role: want.role, ...(want.role === 'worker' ? { pool: want.pool } : {}) },
      { kubernetesVersion: want.kubernetesVersion },
    );
    const vm = await client.cloneVm({
      template: where.template,
      name: want.name,
      folder: where.folder,
      pool: where.pool,
      datastore: where.datastore,
      extraConfig: config.guestinfo,
    });
    await this.configure(client, vm, want, where.network);
    await client.powerOn(vm, want.name);
    const info = await client.vmInfo(vm);
    this.record(cluster, want, vm, info.biosUuid, info.ipAddress, carried);
    this.runtime.log.info('pool.vm.created', { cluster: cluster.id, node: want.name, vm: vm.value, ms: Date.now() - started });
  }

  private async configure(client: VsphereClient, vm: Moref, want: DesiredVm, network?: Resolved['network']): Promise<void> {
    const { cpus, memoryMiB, diskGiB } = want.placement;
    if (cpus === undefined && memoryMiB === undefined && diskGiB === undefined && network === undefined) return;
    await client.reconfigure(vm, { cpus, memoryMiB, diskGiB, network }, want.name);
  }

  /** The guest's IP once VMware Tools reports it (status shows it beside the IP the node registered). */
  private async refreshIp(client: VsphereClient, cluster: ClusterState, node: NodeState): Promise<void> {
    const vm = node.vm;
    if (!vm) return;
    const ip = (await client.vmInfo({ type: 'VirtualMachine', value: vm.moref })).ipAddress;
    if (ip === undefined || node.vm !== vm) return;
    this.runtime.store.mutate((_, touch) => {
      vm.ip = ip;
      touch.node(cluster.id, node.name);
    });
  }

  private record(cluster: ClusterState, want: DesiredVm, vm: Moref, biosUuid: string, ip: string | undefined, replacements?: number): void {
    this.runtime.store.mutate((_, touch) => {
      const node = cluster.nodes[want.name]!;
      node.vm = { moref: vm.value, biosUuid, createdAt: Date.now(), template: want.placement.template, ...(ip ? { ip } : {}) };
      if (replacements !== undefined) node.vmReplacements = replacements;
      touch.node(cluster.id, want.name);
    });
  }

  private async replace(
    client: VsphereClient,
    cluster: ClusterState,
    node: NodeState,
    reason: string,
    maxReplacements: number,
  ): Promise<void> {
    const done = node.vmReplacements ?? 0;
    if (done >= maxReplacements) {
      this.runtime.store.mutate((_, touch) => {
        node.vmError = `gave up after ${done} replacements: ${reason}`;
        touch.node(cluster.id, node.name);
      });
      this.runtime.log.warn('pool.vm.gave-up', { cluster: cluster.id, node: node.name, replacements: done, reason });
      return;
    }
    this.runtime.log.warn('pool.vm.replacing', { cluster: cluster.id, node: node.name, vm: node.vm?.moref, attempt: done + 1, reason });
    await this.retire(client, cluster, node, false);
    this.runtime.store.mutate((_, touch) => {
      const current = cluster.nodes[node.name]!;
      current.vmReplacements = done + 1;
      touch.node(cluster.id, node.name);
    });
  }

  /** A shrunk pool's worker: drained and deleted through the cluster's API, its tokens revoked, its VM destroyed. */
  private async remove(client: VsphereClient, cluster: ClusterState, node: NodeState): Promise<void> {
    if (node.role === 'master') {
      throw new Error(`control-plane node ${node.name} is not removed by provisioning (etcd membership is day-two work)`);
    }
    await this.retire(client, cluster, node, true);
    this.runtime.log.info('pool.vm.removed', { cluster: cluster.id, node: node.name });
  }

  private async retire(client: VsphereClient, cluster: ClusterState, node: NodeState, drain: boolean): Promise<void> {
    const api = await this.runtime.clusterApi(cluster.id);
    if (api && node.joinedAt !== undefined) {
      if (drain) {
        const drained = await drainNode(api, node.name, { force: false, timeoutMs: this.options.drainTimeoutMs });
        this.runtime.log.info('pool.node.drained', { cluster: cluster.id, node: node.name, evicted: drained.evicted.length });
      }
      await api.deleteNode(node.name);
    }
    if (node.revokedAt === undefined) await this.revoke(cluster, node);
    if (node.vm !== undefined) await destroyVm(client, { type: 'VirtualMachine', value: node.vm.moref }, node.name);
    this.runtime.store.mutate((_, touch) => {
      const current = cluster.nodes[node.name]!;
      current.vm = undefined;
      touch.node(cluster.id, node.name);
    });
  }

  private async revoke(cluster: ClusterState, node: NodeState): Promise<void> {
    const revoked = this.runtime.store.mutate((_, touch) => {
      const result = revokeNode(cluster, node, Date.now());
      touch.node(cluster.id, node.name);
      touch.cluster(cluster.id);
      return result;
    });
    this.runtime.log.info('token.revoked', { cluster: cluster.id, node: node.name, jti: revoked.jtis.join(',') });
    this.runtime.changed(cluster);
    if (revoked.joinTokenId !== undefined) await deleteJoinToken(cluster, revoked.joinTokenId, this.runtime);
  }

  // --- NodeMachines: what `controller node remove` (day-two/) asks of provisioning ------------

  async owns(clusterId: string, name: string): Promise<boolean> {
    return this.runtime.store.state.clusters[clusterId]?.nodes[name]?.vm !== undefined;
  }

  /** The Kubernetes version a template carries: the ExtraConfig key its image build (packer/) sets. */
  async templateKubernetesVersion(clusterId: string, template: string): Promise<string | undefined> {
    const cluster = this.runtime.store.state.clusters[clusterId];
    const client = cluster === undefined ? undefined : await this.session(cluster);
    if (!client) throw new Error(`cluster ${clusterId} has no vCenter connection: set it with \`pke-agent controller cluster vsphere\``);
    const info = await client.vmInfo(await client.mustFind('vm', template, 'template'));
    return info.extraConfig.get(TEMPLATE_VERSION_KEY);
  }

  /** Powers off and destroys a node's VM; the pool's next pass clones the name again while the pool still wants it. */
  async destroy(clusterId: string, name: string): Promise<void> {
    const cluster = this.runtime.store.state.clusters[clusterId];
    const node = cluster?.nodes[name];
    if (!cluster || !node?.vm) return;
    const client = await this.session(cluster);
    if (!client) throw new Error(`cluster ${cluster.name} has no vCenter connection to destroy VM ${node.vm.moref} with`);
    await destroyVm(client, { type: 'VirtualMachine', value: node.vm.moref }, name);
    this.runtime.store.mutate((_, touch) => {
      node.vm = undefined;
      touch.node(cluster.id, name);
    });
    this.runtime.log.info('pool.vm.destroyed', { cluster: cluster.id, node: name });
  }
}

/**
 * A pass works from the VMs wanted when it began, and the state moves on meanwhile (a removal
 * ends, an upgrade hands its turn on): a VM is cloned only if it is still wanted.
 */
function stillWanted(cluster: ClusterState, name: string): boolean {
  return desiredVms(cluster).some((vm) => vm.name === name);
}

async function resolvePlacement(client: VsphereClient, placement: Placement): Promise<Resolved> {
  const [template, folder, pool, datastore, network] = await Promise.all([
    client.mustFind('vm', placement.template, 'template'),
    client.mustFind('folder', placement.folder, 'folder'),
    client.resourcePool(placement.resourcePool),
    placement.datastore === undefined ? undefined : client.mustFind('datastore', placement.datastore, 'datastore'),
    placement.network === undefined ? undefined : client.mustFind('network', placement.network, 'network'),
  ]);
  return {
    template,
    folder,
    folderPath: placement.folder,
    pool,
    datastore,
    network: network && placement.network ? { moref: network, name: path.basename(placement.network) } : undefined,
  };
}

/** Powered off first (vSphere refuses to destroy a running VM); one already gone is fine. */
async function destroyVm(client: VsphereClient, vm: Moref, name: string): Promise<void> {
  let info: Awaited<ReturnType<VsphereClient['vmInfo']>>;
  try {
    info = await client.vmInfo(vm);
  } catch (error) {
    if (errorMessage(error).includes('ManagedObjectNotFound')) return;
    throw error;
  }
  if (info.powerState !== 'poweredOff') await client.powerOff(vm, name);
  await client.destroy(vm, name);
}

async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
