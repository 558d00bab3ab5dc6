import type { PhaseEvent } from '../../protocol/api.ts';
import { byRegistration, nextRegistrationSeq } from '../clusters/cluster-records.ts';
import { API } from '../../protocol/routes.ts';
import { virtualRouterId } from '../../vip/keepalived.ts';
import { releaseSlot } from '../formation/join-slots.ts';
import { assertEpoch, fenced, leaseHolder, markInitialized } from '../formation/lease.ts';
import { badRequest, conflict, forbidden } from '../http/problem.ts';
import { bind } from '../http/route.ts';
import { nodeStatus } from '../status/cluster-status.ts';
import { NodeRemovals } from '../day-two/node-removal.ts';
import type { ClusterState, NodeState, PhaseRun } from '../store/state.ts';
import { failureMessage, recordPhaseEvent } from '../timeline/phase-runs.ts';
import type { NodePrincipal } from '../auth/tokens.ts';

/** What a node tells the controller about itself, and the shared views it reads. */

export const registerRoute = bind(API.register, ({ cluster, principal, body, runtime }) => {
  const node = runtime.store.mutate((_, touch) => {
    const record = nodeOf(cluster, principal);
    const previous = record.registration;
    if (record.vm && record.vm.biosUuid !== body.uuid.toLowerCase()) {
      throw conflict(
        `node ${record.name} is the VM ${record.vm.moref} the controller cloned, BIOS UUID ${record.vm.biosUuid}; this VM has ${body.uuid}`,
      );
    }
    if (previous && previous.uuid !== body.uuid) {
      throw conflict(
        `node ${record.name} is registered already by the VM with BIOS UUID ${previous.uuid}; this VM has ${body.uuid}. Two VMs claim the same name`,
      );
    }
    record.registration = {
      ...body,
      registeredAt: previous?.registeredAt ?? Date.now(),
      seq: previous?.seq ?? nextRegistrationSeq(),
    };
    touch.node(cluster.id, record.name);
    return record;
  });
  return nodeStatus(node);
});

export const eventsRoute = bind(API.events, ({ cluster, principal, body, runtime }) => {
  const ended = runtime.store.mutate((_, touch) => {
    const record = nodeOf(cluster, principal);
    const runs = body.events.map((event) => applyEvent(record, event));
    touch.node(cluster.id, record.name);
    return runs.filter((run): run is PhaseRun => run !== undefined);
  });
  for (const run of ended) runtime.metrics.phaseEnded(principal.role, run);
  for (const event of body.events) {
    if (event.type === 'fail') {
      runtime.log.warn('node.phase.failed', {
        cluster: cluster.id,
        node: principal.node,
        phase: event.phase,
        attempt: event.attempt,
        error: event.message,
      });
    }
  }
});

/**
 * The node is a cluster member. The leader's report carries admin.conf and marks the cluster
 * initialized (the lease stops expiring, the joins open); any node's report frees the join slot
 * it holds.
 */
export const joinedRoute = bind(API.joined, async ({ cluster, principal: me, body, runtime }) => {
  const isHolder = () => leaseHolder(cluster, Date.now()) === me.node;
  const checkLease = () => {
    if (body.epoch !== undefined) assertEpoch(cluster, me.node, body.epoch, Date.now());
  };
  checkLease();
  if (body.adminKubeconfig === undefined && cluster.nodes[me.node]?.granted === undefined) {
    throw conflict(`node ${me.node} reports joined, but the controller never granted it init or join material`);
  }
  if (body.adminKubeconfig !== undefined) {
    if (!isHolder()) {
      if (cluster.leader.holder === me.node) throw fenced(cluster, me.node, body.epoch ?? cluster.leader.epoch, Date.now());
      throw forbidden(`only the leader may upload the admin kubeconfig; ${me.node} does not hold the lease`);
    }
    await runtime.acceptAdminKubeconfig(cluster, body.adminKubeconfig);
    // The lease may have ended while the file was written.
    checkLease();
    if (!isHolder()) throw fenced(cluster, me.node, body.epoch ?? cluster.leader.epoch, Date.now());
  } else if (isHolder() && !cluster.leader.initialized) {
    throw badRequest(
      'the leader reports joined with the admin kubeconfig (admin.conf), so that the controller can mint join tokens',
      'adminKubeconfig',
    );
  }
  runtime.store.mutate((_, touch) => {
    const now = Date.now();
    if (body.adminKubeconfig !== undefined) markInitialized(cluster, now);
    const record = nodeOf(cluster, me);
    record.joinedAt ??= now;
    releaseSlot(cluster, me.node);
    touch.node(cluster.id, me.node);
    touch.cluster(cluster.id);
  });
  runtime.log.info('node.joined', { cluster: cluster.id, node: me.node, initialized: body.adminKubeconfig !== undefined });
  runtime.changed(cluster);
});

/** The node's kubelet is Ready and its bootstrap is done. */
export const readyRoute = bind(API.ready, ({ cluster, principal: me, runtime }) => {
  if (cluster.nodes[me.node]?.joinedAt === undefined)
    throw conflict(`node ${me.node} reports ready before it reported joined (its kubeadm init or join)`);
  runtime.store.mutate((_, touch) => {
    nodeOf(cluster, me).readyAt ??= Date.now();
    touch.node(cluster.id, me.node);
  });
  runtime.log.info('node.ready', { cluster: cluster.id, node: me.node });
  runtime.changed(cluster);
});

export const pkiRoute = bind(API.pki, async ({ cluster, runtime }) => ({ files: await runtime.clusterPki(cluster.id) }));

export const controlPlaneRoute = bind(API.controlPlane, ({ cluster, principal, runtime }) => {
  if (principal.kind === 'node') runtime.removals.viewFetched(cluster.id, principal.node);
  const nodes = Object.values(cluster.nodes)
    .filter((n) => n.role === 'master' && n.registration !== undefined)
    .sort(byRegistration)
    .map((n) => ({ name: n.name, primaryIp: n.registration?.primaryIp ?? '', ...(NodeRemovals.isLeaving(n) ? { leaving: true } : {}) }));
  const { vip, port } = cluster.spec.controlPlaneEndpoint;
  return { vip, port, virtualRouterId: virtualRouterId(cluster.id), leader: leaseHolder(cluster, Date.now()), nodes };
});

/** The node's record; made from its token when the state has none (its config predates the state). */
export function nodeOf(cluster: ClusterState, principal: NodePrincipal): NodeState {
  let record = cluster.nodes[principal.node];
  if (!record) {
    record = { name: principal.node, role: principal.role, pool: principal.pool, tokens: [] };
    cluster.nodes[principal.node] = record;
  }
  return record;
}

/** Applies one phase report; returns the phase run it ended, if any. */
function applyEvent(record: NodeState, event: PhaseEvent): PhaseRun | undefined {
  record.phase = event.phase;
  record.phaseState = event.type === 'start' ? 'running' : event.type === 'end' ? 'done' : 'failed';
  const at = Date.parse(event.at);
  record.phaseAt = Number.isNaN(at) ? Date.now() : at;
  if (event.type === 'fail') record.lastError = `${event.phase} (attempt ${event.attempt}): ${failureMessage(event)}`;
  record.phaseRuns ??= [];
  return recordPhaseEvent(record.phaseRuns, event, record.phaseAt);
}
