import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import { adminKubeconfig } from '../standins/apiserver-standin.ts';
import { scratchDir } from '../helpers/cli.ts';
import { etcdBinaries, realEtcdSnapshot } from '../helpers/real-etcd.ts';
import {
  addNode,
  type ClusterApiStandin,
  createLocalCluster,
  rejection,
  initializedLeader,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

/**
 * etcd snapshots on the controller: which node may take one, what an upload is checked against
 * (the claim: this cluster, this node, this id; the size limit; the body's SHA-256; the SHA-256
 * etcd appends to every snapshot), how they are kept (0600, retention) and shown. The snapshots
 * are made by real etcd.
 */

const skip = etcdBinaries.available ? undefined : etcdBinaries.reason;
if (skip) console.warn(`etcd backup tests skipped: ${skip}`);

let t: TestController;
const opened: TestNode[] = [];
const standins: ClusterApiStandin[] = [];
const scratch = scratchDir('backups');
let snapshot: Buffer;

beforeAll(async () => {
  t = await startTestController();
  if (!skip) snapshot = await realEtcdSnapshot({ '/registry/before': 'kept' });
}, 60_000);

afterAll(async () => {
  await Promise.all(opened.map((n) => n.client.close()));
  await Promise.all(standins.map((s) => s.close()));
  await t?.close();
  scratch.remove();
});

async function node(cluster: string, name: string, role: 'master' | 'worker'): Promise<TestNode> {
  const added = await addNode(t.admin, cluster, name, role);
  opened.push(added);
  return added;
}

/** A cluster whose leader m1 has reported its init, and m2 its control-plane join; m3 rendered, never joined. */
async function formedCluster(backups: { intervalHours?: number; retain?: number; maxBytes?: number } = {}) {
  const cluster = (await createLocalCluster(t.admin, { backups: { intervalHours: 0, ...backups } })).id;
  const [m1, m2, m3] = [await node(cluster, 'm1', 'master'), await node(cluster, 'm2', 'master'), await node(cluster, 'm3', 'master')];
  standins.push((await initializedLeader(m1)).api);
  await m2.client.join({});
  await m2.client.joined({});
  return { cluster, m1, m2, m3 };
}

function snapshotFile(name: string, bytes: Buffer): { file: string; sha256: string } {
  const file = path.join(scratch.dir, name);
  writeFileSync(file, bytes);
  return { file, sha256: createHash('sha256').update(bytes).digest('hex') };
}

const takenAt = () => new Date().toISOString();

describe.skipIf(skip)('etcd backups on the controller', () => {
  it('hands an asked-for snapshot to one joined control-plane node, stores its upload 0600 and lists it', async () => {
    const { cluster, m1, m2, m3 } = await formedCluster();
    expect(await m1.client.claimBackup()).toEqual({ due: false });

    const { request } = await t.admin.requestBackup(cluster);
    // Asked again before it is taken: the same request.
    expect((await t.admin.requestBackup(cluster)).request).toBe(request);
    expect(await m3.client.claimBackup()).toEqual({ due: false });
    const claim = await m2.client.claimBackup();
    expect(claim).toMatchObject({ due: true, id: request, reason: 'requested' });
    // One claim at a time: m1 asks while m2 holds it.
    expect(await m1.client.claimBackup()).toEqual({ due: false });
    expect(await m2.client.claimBackup()).toEqual(claim);

    const { file, sha256 } = snapshotFile('ok.db', snapshot);
    // m1 uploads under m2's claim: refused before anything is kept.
    const stolen = await rejection(m1.client.uploadBackup({ id: request, sha256, takenAt: takenAt() }, file));
    expect(stolen.context.status).toBe(409);

    const stored = await m2.client.uploadBackup({ id: request, sha256, takenAt: takenAt(), revision: 2 }, file);
    expect(stored).toMatchObject({ id: request, node: 'm2', reason: 'requested', request, bytes: snapshot.length, sha256, revision: 2 });
    expect(readFileSync(stored.file).equals(snapshot)).toBe(true);
    expect(statSync(stored.file).mode & 0o777).toBe(0o600);
    expect(stored.file.startsWith(t.dataDir)).toBe(true);

    const list = await t.admin.listBackups(cluster);
    expect(list.backups.map((b) => b.id)).toEqual([request]);
    expect(list.pending).toBeUndefined();
    // The request is answered: nothing is due any more (no schedule in this cluster).
    expect(await m2.client.claimBackup()).toEqual({ due: false });
    // A retry of the same upload (its answer lost) gets the stored record again.
    expect((await m2.client.uploadBackup({ id: request, sha256, takenAt: takenAt() }, file)).id).toBe(request);

    const status = await t.admin.status(cluster);
    expect(status.backups).toMatchObject({ stored: 1, latest: { id: request, node: 'm2' } });
  });

  it('refuses a body whose SHA-256 is not the one sent, and a file whose own etcd hash does not check out', async () => {
    const { cluster, m1 } = await formedCluster();
    const { request } = await t.admin.requestBackup(cluster);
    await m1.client.claimBackup();
    const good = snapshotFile('good.db', snapshot);
    const wrongSum = await rejection(m1.client.uploadBackup({ id: request, sha256: 'f'.repeat(64), takenAt: takenAt() }, good.file));
    expect(wrongSum.context.status).toBe(400);
    expect(wrongSum.field).toBe('query.sha256');

    // One byte of the database changed, its transport checksum made to match: etcd's own hash catches it.
    const damaged = Buffer.from(snapshot);
    damaged[4096] = (damaged[4096] ?? 0) ^ 0xff;
    const bad = snapshotFile('damaged.db', damaged);
    const notEtcd = await rejection(m1.client.uploadBackup({ id: request, sha256: bad.sha256, takenAt: takenAt() }, bad.file));
    expect(notEtcd.context.status).toBe(400);
    expect(notEtcd.message).toMatch(/not an etcd snapshot whose own SHA-256 checks out/);
    expect((await t.admin.listBackups(cluster)).backups).toEqual([]);
    expect(existsSync(path.join(t.dataDir, 'clusters', cluster, 'backups', `${request}.db`))).toBe(false);
  });

  it("refuses a snapshot above the cluster's size limit", async () => {
    const { cluster, m1 } = await formedCluster({ maxBytes: 1024 * 1024 });
    const { request } = await t.admin.requestBackup(cluster);
    await m1.client.claimBackup();
    const big = snapshotFile('big.db', Buffer.alloc(1024 * 1024 + 512 + 32));
    const refused = await rejection(m1.client.uploadBackup({ id: request, sha256: big.sha256, takenAt: takenAt() }, big.file));
    expect(refused.context.status).toBe(413);
    expect(refused.message).toMatch(/exceeds the cluster's limit of 1048576 bytes/);
  });

  it('takes scheduled snapshots by the interval and keeps only the newest `retain`, deleting the files of the rest', async () => {
    const { cluster, m1 } = await formedCluster({ intervalHours: 1, retain: 2 });
    const files: string[] = [];
    for (let i = 0; i < 3; i++) {
      const claim = await m1.client.claimBackup();
      // The first by the schedule (none yet); the next interval is an hour away, so the others are asked for.
      expect(claim).toMatchObject({ due: true, reason: i === 0 ? 'scheduled' : 'requested' });
      expect(await m1.client.claimBackup()).toEqual(claim);
      const { file, sha256 } = snapshotFile(`s${i}.db`, snapshot);
      files.push((await m1.client.uploadBackup({ id: claim.id!, sha256, takenAt: takenAt() }, file)).file);
      expect(await m1.client.claimBackup()).toEqual({ due: false });
      await t.admin.requestBackup(cluster);
    }
    const kept = (await t.admin.listBackups(cluster)).backups;
    expect(kept.map((b) => b.file)).toEqual([files[2], files[1]]);
    expect(existsSync(files[0]!)).toBe(false);
    expect(existsSync(files[2]!)).toBe(true);
  });
});

describe('certificate expiry on the controller', () => {
  it('takes reports from joined control-plane nodes only and warns within 30 days', async () => {
    const { cluster, m1, m2, m3 } = await formedCluster();
    const day = 86_400_000;
    const at = (days: number) => new Date(Date.now() + days * day).toISOString();
    await m1.client.reportCertificates({
      checkedAt: at(0),
      certificates: [
        { name: 'apiserver.crt', notAfter: at(300) },
        { name: 'admin.conf', notAfter: at(300) },
      ],
    });
    await m2.client.reportCertificates({
      checkedAt: at(0),
      certificates: [
        { name: 'apiserver.crt', notAfter: at(20.5) },
        { name: 'etcd/server.crt', notAfter: at(25) },
      ],
    });
    const notMember = await rejection(
      m3.client.reportCertificates({ checkedAt: at(0), certificates: [{ name: 'apiserver.crt', notAfter: at(1) }] }),
    );
    expect(notMember.context.status).toBe(409);
    const wrongTime = await rejection(
      m1.client.reportCertificates({ checkedAt: at(0), certificates: [{ name: 'apiserver.crt', notAfter: 'next year' }] }),
    );
    expect(wrongTime.context.status).toBe(400);
    expect(wrongTime.field).toBe('certificates.0.notAfter');

    const status = await t.admin.status(cluster);
    const byName = Object.fromEntries(status.nodes.map((n) => [n.name, n]));
    expect(Math.abs(Date.parse(byName.m1?.certificatesExpireAt ?? '') - Date.parse(at(300)))).toBeLessThan(60_000);
    expect(byName.m3?.certificatesExpireAt).toBeUndefined();
    expect(status.warnings).toHaveLength(1);
    expect(status.warnings?.[0]).toMatch(/^node m2: 2 certificate\(s\) expire within 30 days, first apiserver\.crt at .* \(in 20 days\)/);
  });

  it("takes a renewed admin.conf for its own copy only if it is the cluster's and outlives the one kept", async () => {
    const { cluster, m1 } = await formedCluster();
    const kept = path.join(t.dataDir, 'clusters', cluster, 'admin.conf');
    const before = readFileSync(kept, 'utf8');
    const files = (await m1.client.pki()).files;
    const ca = { certPem: files['ca.crt'] ?? '', keyPem: files['ca.key'] ?? '' };
    const { vip, port } = m1.config.controlPlaneEndpoint;
    const admin = (validDays: number, signer = ca, organizations = ['kubeadm:cluster-admins']) =>
      issueCertificate(signer, { keyType: 'ecdsa', commonName: 'kubernetes-admin', organizations, usage: 'client', validDays });
    const report = (kubeconfig: string) =>
      m1.client.reportCertificates({
        checkedAt: new Date().toISOString(),
        renewedAt: new Date().toISOString(),
        certificates: [{ name: 'admin.conf', notAfter: new Date(Date.now() + 86_400_000).toISOString() }],
        adminKubeconfig: kubeconfig,
      });

    // Signed by another CA: refused, the kept one untouched.
    const stranger = await createCa('kubernetes');
    const foreign = await rejection(report(adminKubeconfig(`https://${vip}:${port}`, ca.certPem, await admin(800, stranger))));
    expect(foreign.context.status).toBe(400);
    expect(foreign.message).toMatch(/not signed by the cluster CA/);
    const notAdmin = await rejection(report(adminKubeconfig(`https://${vip}:${port}`, ca.certPem, await admin(800, ca, ['developers']))));
    expect(notAdmin.message).toMatch(/in none of kubeadm:cluster-admins, system:masters/);
    // Shorter-lived than the kept one (the stand-in's lasts a year): kept as it is.
    await report(adminKubeconfig(`https://${vip}:${port}`, ca.certPem, await admin(30)));
    expect(readFileSync(kept, 'utf8')).toBe(before);

    const renewed = adminKubeconfig(`https://${vip}:${port}`, ca.certPem, await admin(800));
    await report(renewed);
    expect(readFileSync(kept, 'utf8')).toBe(renewed);
    expect(statSync(kept).mode & 0o777).toBe(0o600);
  });
});
