import { clusterSpecSchema, type ClusterList, type ClusterSpec, type ClusterSummary } from '../../protocol/api.ts';
import { clusterSummary, findCluster, newClusterId, newClusterState } from '../clusters.ts';
import { caCertHash, createClusterPki } from '../pki.ts';
import { conflict } from '../problem.ts';
import { clusterRoute, route } from '../route.ts';

/** Cluster management (admin): create a cluster with its PKI, list, show. */

export const createClusterRoute = route<ClusterSpec>({
  method: 'POST',
  pattern: '/v1/clusters',
  access: 'admin',
  status: 201,
  body: clusterSpecSchema,
  async handle({ body: spec, runtime }): Promise<ClusterSummary> {
    const taken = () => {
      if (findCluster(runtime.store.state, spec.name)) throw conflict(`a cluster named ${spec.name} exists already`);
    };
    taken();
    const id = newClusterId(spec.name);
    // Files first, then the state that refers to them: the state never names missing keys.
    const pki = await createClusterPki();
    await runtime.dataDir.writeClusterPki(id, pki);
    taken();
    const cluster = runtime.store.mutate((state, touch) => {
      const created = newClusterState(id, spec, caCertHash(pki['ca.crt']), Date.now());
      state.clusters[id] = created;
      touch.cluster(id);
      return created;
    });
    runtime.pki.set(id, pki);
    runtime.log.info('cluster.created', { cluster: id, kubernetesVersion: spec.kubernetesVersion });
    return clusterSummary(cluster);
  },
});

export const listClustersRoute = route({
  method: 'GET',
  pattern: '/v1/clusters',
  access: 'admin',
  handle: ({ runtime }): ClusterList => ({ clusters: Object.values(runtime.store.state.clusters).map(clusterSummary) }),
});

export const showClusterRoute = clusterRoute({
  method: 'GET',
  pattern: '/v1/clusters/{c}',
  access: 'admin',
  handle: ({ cluster }): ClusterSummary => clusterSummary(cluster),
});
