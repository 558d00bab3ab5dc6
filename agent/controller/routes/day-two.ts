import { API } from '../../protocol/routes.ts';
import {
  backupRecord,
  claimBackup,
  deleteBackupFiles,
  listBackups,
  receiveBackup,
  recordBackup,
  requestBackup,
} from '../backups/backups.ts';
import { renewedAdminKubeconfig } from '../certificates/admin-kubeconfig.ts';
import { acceptCertificates } from '../certificates/certificates.ts';
import { claimRenewal, releaseRenewalClaim } from '../certificates/renewal-claim.ts';
import { bind } from '../http/route.ts';
import { nodeOf } from './nodes.ts';

/** Day two: certificate expiry reports and the renewal claim, and etcd snapshots asked for, claimed and uploaded. */

export const reportCertificatesRoute = bind(API.reportCertificates, async ({ cluster, principal: me, body, runtime }) => {
  const accepted = acceptCertificates(cluster, cluster.nodes[me.node], body, Date.now());
  if (body.adminKubeconfig !== undefined && cluster.leader.initialized) {
    const stored = await runtime.dataDir.readAdminKubeconfig(cluster.id);
    const caCertPem = runtime.pki.get(cluster.id)?.['ca.crt'];
    if (
      stored !== undefined &&
      caCertPem !== undefined &&
      renewedAdminKubeconfig({ cluster, caCertPem, stored, text: body.adminKubeconfig })
    ) {
      await runtime.replaceAdminKubeconfig(cluster, body.adminKubeconfig);
      runtime.log.info('cluster.admin-kubeconfig-renewed', { cluster: cluster.id, node: me.node });
    }
  }
  // A report with `renewedAt` is the end of a renewal: the next control-plane node may renew.
  const released = runtime.store.mutate((_, touch) => {
    nodeOf(cluster, me).certificates = accepted;
    touch.node(cluster.id, me.node);
    return body.renewedAt !== undefined && releaseRenewalClaim(cluster, me.node, touch);
  });
  if (released) runtime.log.info('certificates.renewal-released', { cluster: cluster.id, node: me.node });
  const soonest = Math.min(...accepted.items.map((item) => item.notAfter));
  runtime.log.info('node.certificates', {
    cluster: cluster.id,
    node: me.node,
    expires: new Date(soonest).toISOString(),
    renewed: body.renewedAt,
  });
});

export const claimRenewalRoute = bind(API.claimRenewal, ({ cluster, principal: me, runtime }) => {
  const claim = runtime.store.mutate((_, touch) => claimRenewal(cluster, me.node, Date.now(), touch));
  runtime.log.info(claim.granted ? 'certificates.renewal-claimed' : 'certificates.renewal-refused', {
    cluster: cluster.id,
    node: me.node,
    holder: claim.granted ? me.node : claim.holder,
    until: claim.expiresAt,
  });
  return claim;
});

export const requestBackupRoute = bind(API.requestBackup, ({ cluster, runtime }) => {
  const answer = runtime.store.mutate((_, touch) => requestBackup(cluster, Date.now(), touch));
  runtime.log.info('backup.requested', { cluster: cluster.id, request: answer.request });
  return answer;
});

export const listBackupsRoute = bind(API.listBackups, ({ cluster, runtime }) => listBackups(runtime.snapshots, cluster));

export const claimBackupRoute = bind(API.claimBackup, ({ cluster, principal: me, runtime }) => {
  const claim = runtime.store.mutate((_, touch) => claimBackup(cluster, me.node, Date.now(), touch));
  if (claim.due) runtime.log.info('backup.claimed', { cluster: cluster.id, node: me.node, backup: claim.id, reason: claim.reason });
  return claim;
});

export const uploadBackupRoute = bind(API.uploadBackup, async ({ cluster, principal: me, query, upload, runtime }) => {
  if (!upload) throw new Error('uploadBackup is an upload route: the server hands it the request');
  const received = await receiveBackup({ cluster, node: me.node, query, body: upload, snapshots: runtime.snapshots });
  if ('again' in received) return backupRecord(runtime.snapshots, cluster, received.again);
  const dropped = runtime.store.mutate((_, touch) => recordBackup(cluster, received.claim, received.stored, touch));
  await runtime.store.durable();
  await deleteBackupFiles(runtime.snapshots, cluster.id, dropped);
  runtime.log.info('backup.stored', {
    cluster: cluster.id,
    node: me.node,
    backup: received.stored.id,
    bytes: received.stored.bytes,
    dropped: dropped.length,
  });
  return backupRecord(runtime.snapshots, cluster, received.stored);
});
