import { vsphereCredentialsSchema } from '../../protocol/api.ts';
import { API } from '../../protocol/routes.ts';
import { leaseHolder } from '../formation/lease.ts';
import { forbidden, notFound } from '../http/problem.ts';
import { bind } from '../http/route.ts';

/**
 * The vCenter connection of a cluster's vSphere CPI and CSI: set by the admin, read only by the
 * node that holds the leader lease (the one that installs the add-ons). Stored in the data dir
 * with mode 0600 and never in the state, so it reaches no status answer, snapshot or log.
 */

export const setVsphereRoute = bind(API.setVsphere, async ({ cluster, body, runtime }) => {
  await runtime.dataDir.writeVsphereCredentials(cluster.id, `${JSON.stringify(body)}\n`);
  runtime.log.info('cluster.vsphere-set', { cluster: cluster.id, server: body.server });
  runtime.kickProvisioning(cluster.id);
});

export const getVsphereRoute = bind(API.getVsphere, async ({ cluster, principal: me, runtime }) => {
  if (leaseHolder(cluster, Date.now()) !== me.node)
    throw forbidden(`only the leader reads the vCenter connection; ${me.node} does not hold the lease`);
  const text = await runtime.dataDir.readVsphereCredentials(cluster.id);
  if (text === undefined)
    throw notFound(`no vCenter connection is set for cluster ${cluster.name}: set it with \`pke-agent controller cluster vsphere\``);
  return vsphereCredentialsSchema.parse(JSON.parse(text));
});
