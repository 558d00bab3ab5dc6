import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as netConnect } from 'node:net';
import { connect } from 'node:tls';
import { PkeError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import { probeHttps } from '../net/https-probe.ts';
import { CLUSTER_CA_CERT, PKI_DIR } from './paths.ts';

/**
 * Restarting the static pods of a control-plane node, as kubeadm's docs say to after `kubeadm
 * certs renew`: the kubelet stops a static pod whose manifest leaves /etc/kubernetes/manifests
 * and starts it again when the manifest comes back. Each move is waited out by what the
 * component serves: the stop ends when nothing listens on its port any more, the start when it
 * serves TLS there again, and for the API server and etcd, the certificate now on disk (read
 * from the handshake, nothing trusted or sent).
 */

const MANIFESTS_DIR = '/etc/kubernetes/manifests';
/** Where a manifest waits while its pod is stopped; a rerun after a crash puts back what it finds here. */
export const PAUSED_MANIFESTS_DIR = '/etc/kubernetes/pke/paused-manifests';

export interface StaticPod {
  name: 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';
  port: number;
  /** The certificate file it serves on `port`; absent where it makes its own at start (controller-manager, scheduler). */
  servedCertificate?: string;
  /** A client certificate and key to present (etcd asks for one). */
  client?: { cert: string; key: string };
}

/** In the order a restart goes: etcd first, so the API server comes back onto a running etcd. */
export const CONTROL_PLANE_PODS: readonly StaticPod[] = [
  {
    name: 'etcd',
    port: 2379,
    servedCertificate: `${PKI_DIR}/etcd/server.crt`,
    client: { cert: `${PKI_DIR}/etcd/healthcheck-client.crt`, key: `${PKI_DIR}/etcd/healthcheck-client.key` },
  },
  { name: 'kube-apiserver', port: 6443, servedCertificate: `${PKI_DIR}/apiserver.crt` },
  { name: 'kube-controller-manager', port: 10257 },
  { name: 'kube-scheduler', port: 10259 },
];

const STOP_TIMEOUT_MS = 120_000;
const START_TIMEOUT_MS = 240_000;
const POLL_MS = 250;

const manifestOf = (pod: StaticPod) => `${MANIFESTS_DIR}/${pod.name}.yaml`;
const pausedOf = (pod: StaticPod) => `${PAUSED_MANIFESTS_DIR}/${pod.name}.yaml`;

/** The SHA-256 fingerprint of the certificate served on 127.0.0.1:`port`, or undefined when nothing answers. */
export async function servedFingerprint(host: Host, pod: StaticPod): Promise<string | undefined> {
  const client = pod.client ? { cert: await host.readText(pod.client.cert), key: await host.readText(pod.client.key) } : {};
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: pod.port, rejectUnauthorized: false, timeout: 3000, ...client });
    const done = (value: string | undefined) => {
      socket.destroy();
      resolve(value);
    };
    socket.once('secureConnect', () => done(socket.getPeerCertificate().fingerprint256 || undefined));
    socket.once('error', () => done(undefined));
    socket.once('timeout', () => done(undefined));
  });
}

async function fileFingerprint(host: Host, file: string): Promise<string> {
  const pem = await host.readBytes(file);
  if (pem === undefined) throw new PkeError(`${file} is missing`, { context: { path: file } });
  return new X509Certificate(pem).fingerprint256;
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new PkeError(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(POLL_MS, undefined, { signal });
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port, timeout: 3000 });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(true));
  });
}

/** Moves the manifest out and waits until nothing listens on the pod's port: its process is gone. */
export async function stopStaticPod(host: Host, pod: StaticPod, log: Logger, signal?: AbortSignal): Promise<void> {
  await host.move(manifestOf(pod), pausedOf(pod));
  log.info('static-pod.stopping', { pod: pod.name });
  await waitFor(
    `${pod.name} stopping after its manifest left ${MANIFESTS_DIR} (port ${pod.port} still open)`,
    STOP_TIMEOUT_MS,
    async () => !(await portOpen(pod.port)),
    signal,
  );
}

/** Puts the manifest back and waits until the pod serves again: its certificate file, or a new one of its own. */
export async function startStaticPod(host: Host, pod: StaticPod, log: Logger, signal?: AbortSignal): Promise<void> {
  if (await host.exists(pausedOf(pod))) await host.move(pausedOf(pod), manifestOf(pod));
  const expected = pod.servedCertificate === undefined ? undefined : await fileFingerprint(host, pod.servedCertificate);
  log.info('static-pod.starting', { pod: pod.name });
  await waitFor(
    `${pod.name} serving ${expected ? `the certificate in ${pod.servedCertificate}` : 'again'} on port ${pod.port}`,
    START_TIMEOUT_MS,
    async () => {
      const now = await servedFingerprint(host, pod);
      return now !== undefined && (expected === undefined || now === expected);
    },
    signal,
  );
  log.info('static-pod.serving', { pod: pod.name, port: pod.port });
}

/** Stops and starts one static pod; it serves again when this returns. */
export async function restartStaticPod(host: Host, pod: StaticPod, log: Logger, signal?: AbortSignal): Promise<void> {
  await stopStaticPod(host, pod, log, signal);
  await startStaticPod(host, pod, log, signal);
}

/**
 * Waits until the API answers /livez through the cluster's endpoint (the VIP), verified against
 * the cluster CA: on the node that held the VIP, keepalived dropped it while the API server was
 * down and takes it back once its health check passes again.
 */
export async function waitForEndpoint(
  host: Host,
  endpoint: { vip: string; port: number },
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const ca = await host.readText(CLUSTER_CA_CERT);
  const url = `https://${endpoint.vip}:${endpoint.port}/livez`;
  await waitFor(`the API server answering ${url}`, START_TIMEOUT_MS, async () => (await probeHttps(url, { ca })).ok, signal);
  log.info('static-pod.endpoint-live', { url });
}

/** Puts back every manifest a run that crashed left paused. */
export async function resumePausedManifests(host: Host, log: Logger): Promise<string[]> {
  const names = (await host.list(PAUSED_MANIFESTS_DIR)).filter((name) => name.endsWith('.yaml'));
  for (const name of names) {
    await host.move(`${PAUSED_MANIFESTS_DIR}/${name}`, `${MANIFESTS_DIR}/${name}`);
    log.warn('static-pod.manifest-restored', { manifest: name, note: 'an earlier run stopped with it paused' });
  }
  return names;
}
