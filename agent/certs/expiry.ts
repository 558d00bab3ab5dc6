import { X509Certificate } from 'node:crypto';
import { errorMessage } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { parseKubeconfig } from '../kube/kubeconfig.ts';
import { PKI_DIR } from '../kube/paths.ts';
import { CERT_WARNING_DAYS, LEAF_CERTIFICATES, type LeafCertificate } from '../protocol/api.ts';

/**
 * The leaf certificates kubeadm made on this control-plane node, and when each expires: the
 * files below /etc/kubernetes/pki and the client certificates inside the kubeconfigs below
 * /etc/kubernetes, as `kubeadm certs check-expiration` lists them. Read with node:crypto, so a
 * check needs no kubeadm and works while the API server is down.
 */

const DAY_MS = 86_400_000;

export interface LeafExpiry {
  name: LeafCertificate;
  /** The node path it was read from. */
  path: string;
  notAfter: Date;
  /** SHA-256 fingerprint, as node:crypto gives it (`AA:BB:...`). */
  fingerprint: string;
}

export function leafPath(name: LeafCertificate): string {
  return name.endsWith('.conf') ? `/etc/kubernetes/${name}` : `${PKI_DIR}/${name}`;
}

/** Every leaf certificate present on the node; absent files are left out (super-admin.conf is on the first node only). */
export async function readLeafCertificates(host: Host): Promise<LeafExpiry[]> {
  const found: LeafExpiry[] = [];
  for (const name of LEAF_CERTIFICATES) {
    const path = leafPath(name);
    const pem = await readCertificatePem(host, path);
    if (pem === undefined) continue;
    const cert = parseCertificate(path, pem);
    found.push({ name, path, notAfter: new Date(cert.validTo), fingerprint: cert.fingerprint256 });
  }
  return found;
}

async function readCertificatePem(host: Host, path: string): Promise<string | undefined> {
  const text = await host.readText(path);
  if (text === undefined || !path.endsWith('.conf')) return text;
  const user = parseKubeconfig(text);
  if (user.clientCert === undefined || !('pem' in user.clientCert)) throw new Error(`${path} holds no embedded client certificate`);
  return user.clientCert.pem;
}

function parseCertificate(path: string, pem: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new Error(`${path}: not a certificate (${errorMessage(error)})`);
  }
}

export function soonest(expiries: readonly LeafExpiry[]): LeafExpiry | undefined {
  return expiries.reduce<LeafExpiry | undefined>((a, b) => (a === undefined || b.notAfter < a.notAfter ? b : a), undefined);
}

export function daysLeft(expiry: LeafExpiry, now: Date): number {
  return Math.floor((expiry.notAfter.getTime() - now.getTime()) / DAY_MS);
}

/** One line per certificate within CERT_WARNING_DAYS of its expiry (or past it). */
export function expiryWarnings(expiries: readonly LeafExpiry[], now: Date): string[] {
  return expiries
    .filter((e) => daysLeft(e, now) < CERT_WARNING_DAYS)
    .map((e) =>
      e.notAfter <= now
        ? `certificate ${e.name} expired at ${e.notAfter.toISOString()}; run pke-agent certs renew`
        : `certificate ${e.name} expires at ${e.notAfter.toISOString()} (in ${daysLeft(e, now)} days); run pke-agent certs renew`,
    );
}
