import { errorMessage } from '../../core/errors.ts';
import { API } from '../../protocol/routes.ts';
import { activeUpgrade, allUpgraded, grantOf, nextInLine, upgradeOrder, upgradeSkewRefusal, upgradeView } from '../day-two/upgrade.ts';
import { ApiProblem, badRequest, conflict } from '../http/problem.ts';
import { bind } from '../http/route.ts';
import { ClusterApiError, type ClusterApi } from '../kubernetes/cluster-api.ts';
import { drainNode } from '../kubernetes/drain.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState, NodeState } from '../store/state.ts';
import { TEMPLATE_VERSION_KEY } from '../day-two/machines.ts';

/** Day two: a rolling Kubernetes upgrade, one node at a time (day-two/upgrade.ts has the rules). */

export const startUpgradeRoute = bind(API.startUpgrade, async ({ cluster, body, runtime }) => {
  const active = activeUpgrade(cluster);
  if (active) {
    if (active.to === body.to && (active.strategy ?? 'in-place') === body.strategy && active.template === body.template)
      return upgradeView(cluster)!;
    throw conflict(
      `cluster ${cluster.id} is being upgraded to ${active.to} (${active.strategy ?? 'in-place'}); that upgrade must finish first`,
    );
  }
  const from = cluster.spec.kubernetesVersion;
  const refusal = upgradeSkewRefusal(from, body.to);
  if (refusal) throw badRequest(refusal, 'to');
  if (!cluster.leader.initialized) throw conflict(`cluster ${cluster.id} is not initialized yet; there is nothing to upgrade`);
  const now = Date.now();
  const order = upgradeOrder(cluster, now);
  const notReady = order.filter((node) => node.readyAt === undefined).map((node) => node.name);
  if (notReady.length > 0) throw conflict(`every node must be Ready before an upgrade; not ready: ${notReady.join(', ')}`);
  if (body.strategy === 'replace') await assertReplaceable(runtime, cluster, order, body.to, body.template!);
  runtime.store.mutate((_, touch) => {
    cluster.upgrade = {
      from,
      to: body.to,
      startedAt: now,
      order: order.map((node) => node.name),
      strategy: body.strategy,
      ...(body.template === undefined ? {} : { template: body.template }),
    };
    touch.cluster(cluster.id);
    for (const node of order) {
      node.upgrade = { to: body.to };
      touch.node(cluster.id, node.name);
    }
  });
  runtime.log.info('upgrade.started', {
    cluster: cluster.id,
    from,
    to: body.to,
    strategy: body.strategy,
    template: body.template,
    order: order.map((n) => n.name).join(','),
  });
  runtime.changed(cluster);
  return upgradeView(cluster)!;
});

/**
 * A rolling replacement needs VMs the controller made (it destroys the old ones) and a template
 * that says it holds the new version: its image build records that in its ExtraConfig.
 */
async function assertReplaceable(
  runtime: ControllerRuntime,
  cluster: ClusterState,
  order: NodeState[],
  to: string,
  template: string,
): Promise<void> {
  if (!cluster.spec.provisioning || !runtime.machines?.templateKubernetesVersion)
    throw badRequest(
      `a rolling replacement clones VMs, and the controller does not provision cluster ${cluster.id}'s VMs; upgrade in place`,
      'strategy',
    );
  const manual = order.filter((node) => node.vm === undefined).map((node) => node.name);
  if (manual.length > 0)
    throw badRequest(
      `nodes not provisioned by the controller cannot be replaced by it: ${manual.join(', ')}; upgrade in place, or remove them first`,
      'strategy',
    );
  let carried: string | undefined;
  try {
    carried = await runtime.machines.templateKubernetesVersion(cluster.id, template);
  } catch (error) {
    const message = errorMessage(error);
    if (/not found/i.test(message)) throw badRequest(message, 'template');
    throw new ApiProblem(503, 'internal', `cannot read template ${template} on vSphere: ${message}`);
  }
  if (carried === undefined)
    throw badRequest(
      `template ${template} does not say which Kubernetes it holds (no ${TEMPLATE_VERSION_KEY} in its ExtraConfig; packer/pke-node.pkr.hcl records it)`,
      'template',
    );
  if (carried.replace(/^v/, '') !== to)
    throw badRequest(`template ${template} holds Kubernetes ${carried} (its ${TEMPLATE_VERSION_KEY}), not ${to}`, 'template');
}

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
    if (upgrade.strategy === 'replace')
      throw conflict(
        `cluster ${cluster.id} is being upgraded by rolling replacement from template ${upgrade.template}: the controller replaces node ${me.node}, which is not upgraded in place`,
      );
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
