import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileOnDisk, processesIn } from '../../scripts/lab/vm.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { namespaceSkipReason, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * Day two on the real tier: a one-node control plane of real kubeadm, etcd and API server (lab VM,
 * scripts/lab/), its certificates renewed by `pke-agent certs renew`, an etcd snapshot asked for with
 * `controller cluster backup`, taken by `pke-agent etcd backup` and stored by the controller, and
 * the control plane restored from it with `pke-agent restore`.
 */
const binaries = realBinaries(NEWEST_RELEASE, ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'etcd', 'etcdctl', 'etcdutl']);
const skip = (await namespaceSkipReason()) ?? (binaries.available ? undefined : binaries.reason);
if (skip) console.warn(`real-tier day-two tests skipped: ${skip}`);

interface Expiry {
  name: string;
  notAfter: string;
}

describe.skipIf(skip)(`real Kubernetes v${NEWEST_RELEASE.version}: certificates renewed, a snapshot stored and restored`, () => {
  let s: ScenarioLab;
  const m1 = () => s.node('m1');
  const agent = async (args: string[]) => {
    const result = await s.lab.agentCommand(m1(), [...args, '--json']);
    expect(result.exitCode, `pke-agent ${args.join(' ')}: ${result.stderr.slice(-2000)}`).toBe(0);
    return result.stdout;
  };
  const sh = async (script: string) => {
    const result = await m1().vm!.run('sh', ['-c', script], { env: s.lab.nodeEnvironment(m1()), reject: false });
    return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  };
  /** The SHA-256 fingerprint of the certificate the API server serves on the node. */
  const servedApiserverFingerprint = async () => {
    const result = await sh('openssl s_client -connect 127.0.0.1:6443 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256');
    return result.stdout.trim().replace(/^.*Fingerprint=/i, '');
  };
  const fileFingerprint = (file: string) => new X509Certificate(readFileSync(fileOnDisk(m1().root, file))).fingerprint256;

  beforeAll(async () => {
    s = await scenarioLab('certs', { masters: 1, workers: 0, real: NEWEST_RELEASE });
    expect(await s.boot(m1())).toBe(0);
  }, 300_000);
  afterAll(() => s?.destroy(), 60_000);

  it('renews every leaf certificate, restarts the static pods, serves the new API server certificate and tells the controller', async () => {
    const before = JSON.parse(await agent(['certs', 'check'])) as Expiry[];
    expect(before.map((c) => c.name).sort()).toEqual(
      [
        'admin.conf',
        'apiserver-etcd-client.crt',
        'apiserver-kubelet-client.crt',
        'apiserver.crt',
        'controller-manager.conf',
        'etcd/healthcheck-client.crt',
        'etcd/peer.crt',
        'etcd/server.crt',
        'front-proxy-client.crt',
        'scheduler.conf',
        'super-admin.conf',
      ].sort(),
    );
    const servedBefore = await servedApiserverFingerprint();
    expect(servedBefore).toBe(fileFingerprint('/etc/kubernetes/pki/apiserver.crt'));

    // Nothing expires within 90 days: the timer's run changes nothing.
    expect(JSON.parse(await agent(['certs', 'renew']))).toMatchObject({ renewed: false });
    const renewed = JSON.parse(await agent(['certs', 'renew', '--force'])) as { renewed: boolean; certificates: Expiry[] };
    expect(renewed.renewed).toBe(true);
    const after = new Map(renewed.certificates.map((c) => [c.name, Date.parse(c.notAfter)]));
    for (const { name, notAfter } of before)
      expect({ name, later: (after.get(name) ?? 0) > Date.parse(notAfter) }).toEqual({ name, later: true });

    const servedAfter = await servedApiserverFingerprint();
    expect(servedAfter).not.toBe(servedBefore);
    expect(servedAfter).toBe(fileFingerprint('/etc/kubernetes/pki/apiserver.crt'));
    // The renewed admin.conf works against the restarted control plane.
    expect(await s.lab.kubectl(m1(), ['get', 'nodes', 'm1', '-o', 'name'])).toContain('node/m1');

    const status = (await s.lab.clusterStatus()) as {
      nodes: { name: string; certificatesRenewedAt?: string; certificatesExpireAt?: string }[];
    };
    const reported = status.nodes.find((n) => n.name === 'm1');
    expect(reported?.certificatesRenewedAt).toBeDefined();
    expect(Date.parse(reported?.certificatesExpireAt ?? '')).toBe(Math.min(...after.values()));
  }, 600_000);

  it('resumes a renewal killed while the API server was stopped: the manifest back, no second renewal', async () => {
    const paused = fileOnDisk(m1().root, '/etc/kubernetes/pke/paused-manifests/kube-apiserver.yaml');
    const journalFile = fileOnDisk(m1().root, '/var/lib/pke-agent/certs-renewal.json');
    const run = s.lab.agentCommand(m1(), ['certs', 'renew', '--force', '--json']);
    for (let i = 0; !existsSync(paused); i++) {
      if (i > 3000) throw new Error('the renewal never stopped the API server');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The agent's own process (its comm is Node's MainThread; its command line says what it is).
    const renewing = processesIn(m1().vm!.spec.cgroup).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('certs\0renew');
      } catch {
        return false;
      }
    });
    expect(renewing.length).toBeGreaterThan(0);
    for (const pid of renewing) process.kill(pid, 'SIGKILL');
    expect((await run).exitCode).not.toBe(0);
    const killed = JSON.parse(readFileSync(journalFile, 'utf8')) as { renewedAt?: string; restarted: string[]; finishedAt?: string };
    expect(killed).toMatchObject({ restarted: ['etcd'] });
    expect(killed.renewedAt).toBeDefined();
    expect(killed.finishedAt).toBeUndefined();

    // Rerun without --force: a renewal that did not finish goes on whatever the expiry dates.
    const resumed = JSON.parse(await agent(['certs', 'renew'])) as { renewed: boolean; renewedAt: string };
    expect(resumed).toMatchObject({ renewed: true, renewedAt: killed.renewedAt });
    expect(existsSync(paused)).toBe(false);
    expect(JSON.parse(readFileSync(journalFile, 'utf8'))).toMatchObject({
      renewedAt: killed.renewedAt,
      restarted: ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'],
    });
    expect(await servedApiserverFingerprint()).toBe(fileFingerprint('/etc/kubernetes/pki/apiserver.crt'));
  }, 600_000);

  it('stores a snapshot asked for, and restores the control plane from it: what was there before is back, what came after is gone', async () => {
    await s.lab.kubectl(m1(), ['create', 'configmap', 'before-snapshot', '-n', 'default', '--from-literal=k=v']);
    const { request } = JSON.parse(await s.lab.controllerCli(['cluster', 'backup', '--cluster', s.lab.clusterName, '--json'])) as {
      request: string;
    };
    const stored = JSON.parse(await agent(['etcd', 'backup'])) as {
      id: string;
      file: string;
      bytes: number;
      node: string;
      revision: number;
    };
    expect(stored).toMatchObject({ id: request, node: 'm1' });
    expect(statSync(stored.file).size).toBe(stored.bytes);
    expect(statSync(stored.file).mode & 0o777).toBe(0o600);
    const listed = JSON.parse(await s.lab.controllerCli(['cluster', 'backups', '--cluster', s.lab.clusterName, '--json'])) as {
      backups: { id: string }[];
    };
    expect(listed.backups.map((b) => b.id)).toEqual([request]);
    expect(await s.lab.controllerCli(['status', '--cluster', s.lab.clusterName])).toContain(
      `etcd snapshots 1 stored, latest ${request} from m1`,
    );

    await s.lab.kubectl(m1(), ['create', 'configmap', 'after-snapshot', '-n', 'default', '--from-literal=k=v']);
    // The controller's data dir is on a path the VM sees as this machine does (not one of its overlays).
    const restored = JSON.parse(await agent(['restore', '--snapshot', stored.file])) as { restored: boolean; revision: number };
    expect(restored).toMatchObject({ restored: true, revision: stored.revision });

    const configmaps = JSON.parse(await s.lab.kubectl(m1(), ['get', 'configmaps', '-n', 'default', '-o', 'json'])) as {
      items: { metadata: { name: string } }[];
    };
    const names = configmaps.items.map((c) => c.metadata.name);
    expect(names).toContain('before-snapshot');
    expect(names).not.toContain('after-snapshot');
    // etcd is a new one-member cluster made from the snapshot, and the node is Ready again on it.
    const members = await sh(
      'etcdctl --endpoints https://127.0.0.1:2379 --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt --key /etc/kubernetes/pki/etcd/healthcheck-client.key member list -w json',
    );
    expect((JSON.parse(members.stdout) as { members: { name: string }[] }).members.map((m) => m.name)).toEqual(['m1']);
    for (let i = 0; ; i++) {
      const ready = await s.lab.kubectl(m1(), ['get', 'node', 'm1', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
      if (ready === 'True') break;
      if (i > 120) throw new Error(`m1 not Ready after the restore: ${ready}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }, 600_000);
});
