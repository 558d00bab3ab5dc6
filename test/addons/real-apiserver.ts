import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type ResultPromise, execa } from 'execa';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import { freePort } from '../../scripts/free-port.ts';

/**
 * A lone etcd and kube-apiserver (the real binaries) on loopback with a throwaway PKI: enough for
 * `kubectl apply --dry-run=server`, which runs admission, schema validation and defaulting
 * without a kubelet or controllers. Stopped by PID, and its files removed by the caller's scratch dir.
 */
export interface RealApiServer {
  kubeconfig: string;
  kubectl(args: string[], input?: string): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export interface ApiServerBinaries {
  etcd: string;
  kubeApiserver: string;
  kubectl: string;
}

export async function startApiServer(binaries: ApiServerBinaries, dir: string): Promise<RealApiServer> {
  mkdirSync(dir, { recursive: true });
  const file = (name: string, content: string) => {
    const at = path.join(dir, name);
    writeFileSync(at, content, { mode: 0o600 });
    return at;
  };
  const ca = await createCa('kubernetes');
  const serving = await issueCertificate(ca, {
    commonName: 'kube-apiserver',
    altNames: ['127.0.0.1', 'localhost'],
    usage: 'server',
    validDays: 1,
  });
  const admin = await issueCertificate(ca, { commonName: 'test-admin', organizations: ['system:masters'], usage: 'client', validDays: 1 });
  const sa = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const [etcdClient, etcdPeer, securePort] = [await freePort(), await freePort(), await freePort()];
  const processes: ResultPromise[] = [];
  const stop = async () => {
    for (const child of processes.reverse()) {
      child.kill('SIGTERM');
      await child.catch(() => undefined);
    }
  };
  const log = (name: string) => ({ file: path.join(dir, `${name}.log`) });
  try {
    processes.push(
      execa(
        binaries.etcd,
        [
          `--data-dir=${path.join(dir, 'etcd')}`,
          `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
          `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
          `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        ],
        { stdout: log('etcd'), stderr: log('etcd'), reject: false },
      ),
    );
    processes.push(
      execa(
        binaries.kubeApiserver,
        [
          `--etcd-servers=http://127.0.0.1:${etcdClient}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          // Loopback cannot be the kubernetes Service's endpoint; nothing here needs that Service.
          '--endpoint-reconciler-type=none',
          `--secure-port=${securePort}`,
          `--tls-cert-file=${file('apiserver.crt', serving.certPem)}`,
          `--tls-private-key-file=${file('apiserver.key', serving.keyPem)}`,
          `--client-ca-file=${file('ca.crt', ca.certPem)}`,
          `--service-account-key-file=${file('sa.pub', sa.publicKey)}`,
          `--service-account-signing-key-file=${file('sa.key', sa.privateKey)}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          '--service-cluster-ip-range=10.96.0.0/12',
          '--authorization-mode=Node,RBAC',
          // As kubeadm runs it: CNI and CSI node agents are privileged.
          '--allow-privileged=true',
          `--cert-dir=${path.join(dir, 'certs')}`,
        ],
        { stdout: log('kube-apiserver'), stderr: log('kube-apiserver'), reject: false },
      ),
    );
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    const kubeconfig = file(
      'admin.conf',
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: test\n  cluster:\n    server: https://127.0.0.1:${securePort}\n    certificate-authority-data: ${b64(ca.certPem)}`,
        `users:\n- name: admin\n  user:\n    client-certificate-data: ${b64(admin.certPem)}\n    client-key-data: ${b64(admin.keyPem)}`,
        'contexts:\n- name: test\n  context:\n    cluster: test\n    user: admin',
        'current-context: test',
        '',
      ].join('\n'),
    );
    const kubectl = async (args: string[], input?: string) => {
      const result = await execa(binaries.kubectl, ['--kubeconfig', kubeconfig, ...args], {
        reject: false,
        timeout: 120_000,
        ...(input === undefined ? {} : { input }),
      });
      return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
    };
    // Bounded: a minute for etcd and the API server to come up and finish their post-start hooks.
    const deadline = Date.now() + 60_000;
    let exited = '';
    for (const [index, child] of processes.entries())
      void child.then((result) => {
        exited ||= `${index === 0 ? 'etcd' : 'kube-apiserver'} exited ${result.exitCode ?? result.signal}`;
      });
    for (;;) {
      if (exited) throw new Error(`${exited} (logs in ${dir})`);
      const ready = await kubectl(['get', '--raw', '/readyz']);
      if (ready.exitCode === 0 && ready.stdout.trim() === 'ok') break;
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready within 60 s (logs in ${dir}): ${ready.stderr.trim()}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return { kubeconfig, kubectl, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
