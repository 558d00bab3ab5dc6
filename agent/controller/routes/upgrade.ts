import { errorMessage } from '../../core/errors.ts';
import { API } from '../../protocol/routes.ts';
import { activeUpgrade, allUpgraded, grantOf, nextInLine, upgradeOrder, upgradeSkewRefusal, upgradeView } from '../day-two/upgrade.ts';
import { ApiProblem, badRequest, conflict } from '../http/problem.ts';
import { bind } from '../http/route.ts';
import { ClusterApiError, type ClusterApi } from '../kubernetes/cluster-api.ts';
import { drainNode } from '../kubernetes/drain.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState } from '../store/state.ts';

/** Day two: a rolling Kubernetes upgrade, one node at a time (day-two/upgrade.ts has the rules). */

export const startUpgradeRoute = bind(API.startUpgrade, ({ cluster, body, runtime }) => {
  const active = activeUpgrade(cluster);
  if (active) {
    if (active.to === body.to) return upgradeView(cluster)!;
    throw conflict(`cluster ${cluster.id} is being upgraded to ${active.to}; that upgrade must finish first`);
  }
  const from = cluster.spec.kubernetesVersion;
  const refusal = upgradeSkewRefusal(from, body.to);
  if (refusal) throw badRequest(refusal, 'to');
  if (!cluster.leader.initialized) throw conflict(`cluster ${cluster.id} is not initialized yet; there is nothing to upgrade`);
  const now = Date.now();
  const order = upgradeOrder(cluster, now);
  const notReady = order.filter((node) => node.readyAt === undefined).map((node) => node.name);
  if (notReady.length > 0) throw conflict(`every node must be Ready before an upgrade; not ready: ${notReady.join(', ')}`);
  runtime.store.mutate((_, touch) => {
    cluster.upgrade = { from, to: body.to, startedAt: now, order: order.map((node) => node.name) };
    touch.cluster(cluster.id);
    for (const node of order) {
      node.upgrade = { to: body.to };
      touch.node(cluster.id, node.name);
    }
  });
  runtime.log.info('upgrade.started', { cluster: cluster.id, from, to: body.to, order: order.map((n) => n.name).join(',') });
  runtime.changed(cluster);
  return upgradeView(cluster)!;
});

/**
 * A node's turn: waits (up to `?wait=`) until it is the next in line and the slot is free, then
 * gives it the slot. The holder asking again (a rerun) keeps it; a node already upgraded is
 * answered at once, so its rerun goes through its finished steps.
 */
export const upgradeSlotRoute = bind(API.upgradeSlot, async ({ cluster, principal: me, body, query, signal, runtime }) => {
  const deadline = Date.now() + query.wait * 1000;
  for (;;) {
    const upgrade = cluster.upgrade;
    if (!upgrade || (upgrade.finishedAt !== undefined && upgrade.to !== body.to))
      throw conflict(`no upgrade of cluster ${cluster.id} is in progress; the operator starts one with \`controller cluster upgrade\``);
    if (upgrade.to !== body.to) throw conflict(`cluster ${cluster.id} is being upgraded to ${upgrade.to}, not ${body.to}`);
    if (!upgrade.order.includes(me.node))
      throw conflict(`node ${me.node} is not part of the upgrade to ${upgrade.to}: it was not a Ready member when the upgrade started`);
    const record = cluster.nodes[me.node]!;
    if (record.upgrade?.upgradedAt !== undefined || upgrade.holder === me.node) return grantOf(cluster, me.node);
    if (upgrade.holder === undefined && nextInLine(cluster) === me.node) {
      runtime.store.mutate((_, touch) => {
        upgrade.holder = me.node;
        record.upgrade = { to: upgrade.to, grantedAt: Date.now() };
        touch.cluster(cluster.id);
        touch.node(cluster.id, me.node);
      });
      runtime.log.info('upgrade.slot', { cluster: cluster.id, node: me.node, to: upgrade.to });
      runtime.changed(cluster);
      return grantOf(cluster, me.node);
    }
    if (Date.now() >= deadline || signal.aborted) {
      const why = upgrade.holder ? `held by ${upgrade.holder}` : `next in line is ${nextInLine(cluster) ?? 'nobody'}`;
      throw new ApiProblem(409, 'slot-busy', `the upgrade slot of cluster ${cluster.id} is ${why}; ask again`);
    }
    if (runtime.isClosing) throw new ApiProblem(503, 'internal', 'the controller is shutting down; ask again');
    await runtime.wakeups.next(cluster.id, deadline - Date.now(), signal);
  }
});

export const drainRoute = bind(API.drain, async ({ cluster, principal: me, body, signal, runtime }) => {
  assertHolder(cluster, me.node);
  // As `kubectl drain --ignore-daemonsets`: a pod no controller would recreate stops the drain (named in the answer).
  const { evicted } = await withClusterApi(runtime, cluster, (api) =>
    drainNode(api, me.node, { force: false, timeoutMs: body.timeoutSeconds * 1000, signal }),
  );
  runtime.log.info('upgrade.drained', { cluster: cluster.id, node: me.node, evicted: evicted.length });
  return { evicted };
});

export const uncordonRoute = bind(API.uncordon, async ({ cluster, principal: me, runtime }) => {
  assertHolder(cluster, me.node);
  await withClusterApi(runtime, cluster, (api) => api.setNodeUnschedulable(me.node, false));
});

/**
 * The holder runs the new version: checked in the cluster's API (the Node Ready, its kubelet at
 * the new version) before the slot goes to the next node. The last one finishes the upgrade: the
 * cluster's version becomes the new one, which nodes configured from now on get.
 */
export const upgradedRoute = bind(API.upgraded, async ({ cluster, principal: me, body, runtime }) => {
  const upgrade = cluster.upgrade;
  if (!upgrade || upgrade.to !== body.to) throw conflict(`cluster ${cluster.id} is not being upgraded to ${body.to}`);
  if (cluster.nodes[me.node]?.upgrade?.upgradedAt !== undefined) return;
  assertHolder(cluster, me.node);
  const info = await withClusterApi(runtime, cluster, (api) => api.nodeInfo(me.node));
  if (!info.ready || info.kubeletVersion !== `v${body.to}`)
    throw conflict(
      `node ${me.node} is not Ready on v${body.to} in the cluster's API (Ready: ${info.ready}, kubelet ${info.kubeletVersion ?? 'unknown'})`,
    );
  const finished = runtime.store.mutate((_, touch) => {
    const record = cluster.nodes[me.node]!;
    record.upgrade = { to: body.to, grantedAt: record.upgrade?.grantedAt, upgradedAt: Date.now() };
    upgrade.holder = undefined;
    if (allUpgraded(cluster)) {
      upgrade.finishedAt = Date.now();
      cluster.spec.kubernetesVersion = upgrade.to;
    }
    touch.node(cluster.id, me.node);
    touch.cluster(cluster.id);
    return upgrade.finishedAt !== undefined;
  });
  runtime.log.info(finished ? 'upgrade.finished' : 'upgrade.node-done', { cluster: cluster.id, node: me.node, to: body.to });
  runtime.changed(cluster);
});

function assertHolder(cluster: ClusterState, node: string): void {
  const upgrade = activeUpgrade(cluster);
  if (upgrade?.holder !== node)
    throw conflict(`node ${node} does not hold the upgrade slot of cluster ${cluster.id} (holder: ${upgrade?.holder ?? 'none'})`);
}

/**
 * The cluster's API with the admin.conf the leader uploaded. No answer or a 5xx is 503
 * `cluster-api-unavailable` (the node's client asks again); a refusal is 409 with its message.
 */
async function withClusterApi<T>(runtime: ControllerRuntime, cluster: ClusterState, use: (api: ClusterApi) => Promise<T>): Promise<T> {
  const api = await runtime.clusterApi(cluster.id);
  if (api === undefined) throw new ApiProblem(503, 'cluster-api-unavailable', `the controller has no admin kubeconfig for ${cluster.id}`);
  try {
    return await use(api);
  } catch (error) {
    if (error instanceof ApiProblem) throw error;
    runtime.log.warn('upgrade.cluster-api.failed', { cluster: cluster.id, error: errorMessage(error) });
    if (error instanceof ClusterApiError && error.transient)
      throw new ApiProblem(503, 'cluster-api-unavailable', `${errorMessage(error)}; retry`);
    throw conflict(errorMessage(error));
  }
}
