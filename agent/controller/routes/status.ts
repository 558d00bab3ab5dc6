import { API } from '../../protocol/routes.ts';
import { clusterStatus } from '../status/cluster-status.ts';
import { bind } from '../http/route.ts';

/** The cluster as the controller sees it, for the admin and for any node of the cluster. */
export const statusRoute = bind(API.status, ({ cluster, runtime }) => clusterStatus(cluster, Date.now(), runtime.snapshots));
