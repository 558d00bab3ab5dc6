import { API } from '../../protocol/routes.ts';
import { clusterSummary, findCluster, newClusterId, newClusterState } from '../clusters/cluster-records.ts';
import { caCertHash, createClusterPki } from '../clusters/pki.ts';
import { conflict } from '../http/problem.ts';
import { bind } from '../http/route.ts';

/** Cluster management (admin): create a cluster with its PKI, list, show. */

export const createClusterRoute = bind(API.createCluster, async ({ body: spec, runtime }) => {
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
  runtime.kickProvisioning(id);
  return clusterSummary(cluster);
});

export const listClustersRoute = bind(API.listClusters, ({ runtime }) => ({
  clusters: Object.values(runtime.store.state.clusters).map(clusterSummary),
}));

export const showClusterRoute = bind(API.showCluster, ({ cluster }) => clusterSummary(cluster));
