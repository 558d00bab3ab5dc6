import { X509Certificate, createHash, generateKeyPair as generateKeyPairCallback, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { PkiFile } from '../../protocol/api.ts';

/**
 * Certificates the kubeadm way. Keys are RSA 2048 made by node:crypto (native; node-forge's
 * keygen is seconds per key) and written as kubeadm writes them: private keys PKCS#1
 * (`RSA PRIVATE KEY`), public keys PKIX (`PUBLIC KEY`). node-forge builds and signs the certificates.
 */

const generateKeyPair = promisify(generateKeyPairCallback);

export interface KeyPair {
  /** PKCS#1 PEM for RSA, PKCS#8 for ECDSA. */
  privateKeyPem: string;
  /** PKIX (SubjectPublicKeyInfo) PEM. */
  publicKeyPem: string;
}

export interface CertifiedKey {
  certPem: string;
  keyPem: string;
}

const CA_YEARS = 10;
/** Backdating covers clock skew between the controller and the nodes. */
const BACKDATE_MS = 5 * 60 * 1000;

async function generateRsaKeyPair(): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** A self-signed CA as kubeadm makes it: CN only, 10 years, SAN DNS:<CN>, keyCertSign. */
export async function createCa(commonName: string): Promise<CertifiedKey> {
  const keys = await generateRsaKeyPair();
  const cert = baseCertificate(keys.publicKeyPem, [{ name: 'commonName', value: commonName }], yearsFromNow(CA_YEARS));
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true, keyCertSign: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'subjectAltName', altNames: [{ type: 2, value: commonName }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

export interface LeafOptions {
  /**
   * `rsa` (default) as kubeadm makes its certificates; `ecdsa` (P-256) for the controller's
   * serving certificate, whose key signs every TLS handshake of every node.
   */
  keyType?: 'rsa' | 'ecdsa';
  commonName: string;
  organizations?: string[];
  /** DNS names and IP addresses, told apart by their form. */
  altNames?: string[];
  usage: 'server' | 'client' | 'server-and-client';
  validDays: number;
}

/** A leaf certificate signed by `ca`. */
export async function issueCertificate(ca: CertifiedKey, options: LeafOptions): Promise<CertifiedKey> {
  const keys = options.keyType === 'ecdsa' ? await generateEcdsaKeyPair() : await generateRsaKeyPair();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const subject = [
    ...(options.organizations ?? []).map((value) => ({ name: 'organizationName', value })),
    { name: 'commonName', value: options.commonName },
  ];
  // node-forge encodes RSA public keys only: an ECDSA key takes the CA's key's place until signing.
  const cert = baseCertificate(
    options.keyType === 'ecdsa' ? forge.pki.publicKeyToPem(caCert.publicKey) : keys.publicKeyPem,
    subject,
    new Date(Date.now() + options.validDays * 86_400_000),
  );
  cert.setIssuer(caCert.subject.attributes);
  const altNames = (options.altNames ?? []).map((name) => (isIP(name) ? { type: 7, ip: name } : { type: 2, value: name }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    {
      name: 'extKeyUsage',
      serverAuth: options.usage !== 'client',
      clientAuth: options.usage !== 'server',
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
  ]);
  if (options.keyType === 'ecdsa') signWithSubjectKey(cert, keys.publicKeyPem, ca.keyPem);
  else cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

/** Puts `publicKeyPem` (any algorithm) into the certificate and signs it with the RSA CA key (sha256WithRSAEncryption). */
function signWithSubjectKey(cert: forge.pki.Certificate, publicKeyPem: string, caKeyPem: string): void {
  const oid = forge.pki.oids.sha256WithRSAEncryption ?? '1.2.840.113549.1.1.11';
  cert.siginfo.algorithmOid = oid;
  // node-forge has getTBSCertificate; its type definitions do not declare it.
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  const spkiDer = Buffer.from(publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  // TBSCertificate: version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions.
  (tbs.value as forge.asn1.Asn1[])[6] = forge.asn1.fromDer(spkiDer.toString('binary'));
  const signature = sign('sha256', Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary'), caKeyPem);
  Object.assign(cert, { tbsCertificate: tbs, signatureOid: oid, signature: signature.toString('binary') });
}

async function generateEcdsaKeyPair(): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** kubeadm's CA pin: `sha256:` + hex SHA-256 of the certificate's DER SubjectPublicKeyInfo. */
export function caCertHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/**
 * The files control-plane nodes share, keyed by their path below /etc/kubernetes/pki, with
 * the subjects kubeadm gives them.
 */
export async function createClusterPki(): Promise<Record<PkiFile, string>> {
  const [ca, etcdCa, frontProxyCa, sa] = await Promise.all([
    createCa('kubernetes'),
    createCa('etcd-ca'),
    createCa('front-proxy-ca'),
    generateRsaKeyPair(),
  ]);
  return {
    'ca.crt': ca.certPem,
    'ca.key': ca.keyPem,
    'etcd/ca.crt': etcdCa.certPem,
    'etcd/ca.key': etcdCa.keyPem,
    'front-proxy-ca.crt': frontProxyCa.certPem,
    'front-proxy-ca.key': frontProxyCa.keyPem,
    'sa.key': sa.privateKeyPem,
    'sa.pub': sa.publicKeyPem,
  };
}

function baseCertificate(publicKeyPem: string, subject: forge.pki.CertificateField[], notAfter: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = positiveSerial();
  cert.validity.notBefore = new Date(Date.now() - BACKDATE_MS);
  cert.validity.notAfter = notAfter;
  cert.setSubject(subject);
  return cert;
}

/** 16 random bytes with the top bit clear: DER INTEGERs are signed, serials must be positive. */
function positiveSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function yearsFromNow(years: number): Date {
  const date = new Date();
  date.setUTCFullYear(date.getUTCFullYear() + years);
  return date;
}
