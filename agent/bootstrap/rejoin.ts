import { PkeError } from '../core/errors.ts';
import type { AgentConfig } from '../config/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import { Journal } from '../journal/journal.ts';
import { acquireBootstrapLock } from '../journal/lock.ts';
import { registeredNode } from '../journal/phase-outputs.ts';
import { kubeadmReset } from '../kube/kubeadm.ts';
import { ADMIN_KUBECONFIG, PKI_DIR } from '../kube/paths.ts';
import { PAUSED_MANIFESTS_DIR } from '../kube/static-pods.ts';
import { joinAgain } from '../phases/kube-join.ts';
import { PKI_FILES } from '../protocol/api.ts';
import type { NodeApi } from '../protocol/node-api.ts';

/**
 * `pke-agent restore --rejoin` on each other control-plane node, one at a time, once `pke-agent
 * restore` has rolled the control plane back on one of them: this node's etcd member belongs to
 * the etcd cluster from before the restore, which is gone. `kubeadm reset -f` clears its member,
 * static pods, certificates and kubeconfigs; the cluster's shared CAs are written again from the
 * controller's bundle (asked for before the reset, so a controller that does not answer changes
 * nothing); then the node joins the restored control plane as a new etcd member, as the kube-join
 * phase does, the node that ran kubeadm init included.
 */
export async function rejoinAfterRestore(options: {
  host: Host;
  log: Logger;
  config: AgentConfig;
  controller: NodeApi;
  signal: AbortSignal;
}): Promise<void> {
  const { host, log, config, controller, signal } = options;
  if (config.role !== 'master') throw new PkeError('restore --rejoin is for control-plane nodes; a worker keeps its kubelet');
  const unlock = await acquireBootstrapLock(host);
  try {
    const outputs = (await Journal.open(host)).outputs();
    const { nodeName } = registeredNode(outputs, 'restore --rejoin');
    const bundle = await controller.pki();
    const missing = PKI_FILES.filter((name) => bundle.files[name] === undefined);
    if (missing.length > 0) throw new PkeError(`restore --rejoin: the controller's PKI bundle has no ${missing.join(', ')}`);

    // Its kubelet posts no more status for the Node deleted next; kubeadm reset would stop it anyway.
    await host.service.stop('kubelet');
    await deleteOwnNode(host, log, nodeName);
    log.info('etcd.rejoin.reset');
    await kubeadmReset(host, log, { keepSharedPki: false });
    // What a crashed certs renewal left paused is the old member's: its next run would put it back over the new.
    await host.remove(PAUSED_MANIFESTS_DIR);
    for (const name of PKI_FILES) {
      await host.writeFile(`${PKI_DIR}/${name}`, bundle.files[name]!, { mode: name.endsWith('.key') ? 0o600 : 0o644 });
    }
    log.info('etcd.rejoin.joining');
    await joinAgain({ config, host, log, outputs, signal, controller });
    log.info('etcd.rejoin.done');
  } finally {
    await unlock();
  }
}

/**
 * The snapshot holds this node's Node object as it was, Ready, and kubeadm join refuses a name
 * whose Node is Ready (until the node lifecycle controller marks it unknown, about a minute after
 * the restored controller manager starts). Deleted through the restored API with this node's
 * admin.conf (kubeadm reset removes it); the join registers the Node again, with the config's
 * labels and taints.
 */
async function deleteOwnNode(host: Host, log: Logger, nodeName: string): Promise<void> {
  if (!(await host.exists(ADMIN_KUBECONFIG))) {
    log.warn('etcd.rejoin.node-kept', {
      node: nodeName,
      reason: `${ADMIN_KUBECONFIG} is gone (an earlier reset); should the join find the Node still Ready, delete it from another control-plane node`,
    });
    return;
  }
  const tail = ['delete', 'node', nodeName, '--ignore-not-found'];
  await host.run('kubectl', ['--kubeconfig', host.file(ADMIN_KUBECONFIG), ...tail], {
    timeoutMs: 60_000,
    displayArgs: ['--kubeconfig', ADMIN_KUBECONFIG, ...tail],
  });
  log.info('etcd.rejoin.node-deleted', { node: nodeName });
}
