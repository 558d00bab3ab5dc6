import { CONTROL_PLANE_POOL } from '../../protocol/api.ts';
import { API } from '../../protocol/routes.ts';
import { clusterSummary } from '../clusters/cluster-records.ts';
import { badRequest, conflict } from '../http/problem.ts';
import { bind } from '../http/route.ts';

/** Pool sizes (admin): the new size is in the spec at once; provisioning reaches it. */
export const scalePoolRoute = bind(API.scalePool, ({ cluster, body, runtime }) => {
  if (!cluster.spec.provisioning)
    throw conflict(`cluster ${cluster.name} is not provisioned by the controller; create it with --provision to have pools scaled`);
  if (body.pool === CONTROL_PLANE_POOL)
    throw conflict('the control plane is not scaled by provisioning yet: removing a member needs etcd membership changes (day two)');
  const pool = cluster.spec.pools.find((p) => p.name === body.pool);
  if (!pool)
    throw badRequest(
      `cluster ${cluster.name} has no pool ${body.pool}; its pools: ${cluster.spec.pools.map((p) => p.name).join(', ')}`,
      'pool',
    );
  if (body.size > 0 && pool.placement === undefined) throw badRequest(`pool ${pool.name} has no placement to clone its VMs with`, 'pool');
  const from = pool.size ?? 0;
  runtime.store.mutate((_, touch) => {
    pool.size = body.size;
    touch.cluster(cluster.id);
  });
  runtime.log.info('pool.scaled', { cluster: cluster.id, pool: pool.name, from, to: body.size });
  runtime.kickProvisioning(cluster.id);
  return clusterSummary(cluster);
});
