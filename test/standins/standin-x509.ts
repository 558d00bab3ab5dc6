// STAND-IN support, for tests only: the leaf certificates the kubeadm stand-in issues, built with
// node:crypto alone. They are what agent/controller/pki.ts makes of an ECDSA leaf, DER for DER
// but for serial, key, validity and signature (standin-x509.test.ts holds the two side by side):
// with node-forge, which pki.ts builds certificates with, a control plane's dozen certificates
// cost a stand-in run over 100 ms of CPU, three times as much as this way.
import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import type { CertifiedKey, LeafOptions } from '../../agent/controller/clusters/pki.ts';

/** As pki.ts backdates: clock skew between the nodes. */
const BACKDATE_MS = 5 * 60 * 1000;

const sequence = (...items: Buffer[]) => tlv(0x30, ...items);
const SHA256_WITH_RSA = sequence(oid('1.2.840.113549.1.1.11'), tlv(0x05));
const SERVER_AUTH = oid('1.3.6.1.5.5.7.3.1');
const CLIENT_AUTH = oid('1.3.6.1.5.5.7.3.2');

/** A leaf certificate with a new ECDSA P-256 key, signed (sha256WithRSAEncryption) by the RSA CA `ca`. */
export function issueEcdsaLeaf(ca: CertifiedKey, options: Omit<LeafOptions, 'keyType'>): CertifiedKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const signer = issuer(ca);
  const now = Date.now();
  const tbs = sequence(
    tlv(0xa0, integer(Buffer.from([2]))), // v3
    integer(positiveSerial()),
    SHA256_WITH_RSA,
    signer.subject,
    sequence(time(new Date(now - BACKDATE_MS)), time(new Date(now + options.validDays * 86_400_000))),
    sequence(...[...(options.organizations ?? []).map((o) => attribute('2.5.4.10', o)), attribute('2.5.4.3', options.commonName)]),
    publicKey,
    tlv(0xa3, sequence(...extensions(options, signer.keyId))),
  );
  const certificate = sequence(tbs, SHA256_WITH_RSA, tlv(0x03, Buffer.from([0]), sign('sha256', tbs, signer.key)));
  return { certPem: pem('CERTIFICATE', certificate), keyPem: privateKey };
}

interface Issuer {
  /** The CA's subject as its certificate encodes it: the leaf's issuer. */
  subject: Buffer;
  /** The CA's subject key identifier as node-forge computes it for an RSA key: SHA-1 of its RSAPublicKey. */
  keyId: Buffer;
  key: KeyObject;
}

/** Each CA read once per run: parsing its key PEM costs more than a signature with it. */
const issuers = new Map<string, Issuer>();

function issuer(ca: CertifiedKey): Issuer {
  const id = ca.certPem + ca.keyPem;
  let known = issuers.get(id);
  if (!known) {
    const caCert = new X509Certificate(ca.certPem);
    const keyId = createHash('sha1')
      .update(caCert.publicKey.export({ type: 'pkcs1', format: 'der' }))
      .digest();
    known = { subject: subjectOf(caCert), keyId, key: createPrivateKey(ca.keyPem) };
    issuers.set(id, known);
  }
  return known;
}

function extensions(options: Omit<LeafOptions, 'keyType'>, caKeyId: Buffer): Buffer[] {
  const altNames = (options.altNames ?? []).map((name) => (isIP(name) ? tlv(0x87, ipBytes(name)) : tlv(0x82, Buffer.from(name, 'latin1'))));
  return [
    extension('2.5.29.19', true, sequence()), // basicConstraints: not a CA
    extension('2.5.29.15', true, tlv(0x03, Buffer.from([5, 0xa0]))), // keyUsage: digitalSignature, keyEncipherment
    extension(
      '2.5.29.37',
      false,
      sequence(...(options.usage !== 'client' ? [SERVER_AUTH] : []), ...(options.usage !== 'server' ? [CLIENT_AUTH] : [])),
    ),
    extension('2.5.29.35', false, sequence(tlv(0x80, caKeyId))), // authorityKeyIdentifier
    ...(altNames.length > 0 ? [extension('2.5.29.17', false, sequence(...altNames))] : []),
  ];
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value));
}

/** A relative distinguished name of one attribute, its value a PrintableString as node-forge writes it. */
function attribute(type: string, value: string): Buffer {
  return tlv(0x31, sequence(oid(type), tlv(0x13, Buffer.from(value, 'latin1'))));
}

function subjectOf(caCert: X509Certificate): Buffer {
  const [tbs = Buffer.alloc(0)] = children(caCert.raw);
  const fields = children(tbs);
  // version, serialNumber, signature, issuer, validity, subject; a v1 certificate has no version.
  const subject = fields[fields[0]?.[0] === 0xa0 ? 5 : 4];
  if (!subject) throw new Error('stand-in: the CA certificate has no subject');
  return subject;
}

/** 16 random bytes with the top bit clear, as pki.ts makes serials (a DER INTEGER is signed). */
function positiveSerial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes;
}

/** UTCTime until 2049, GeneralizedTime from 2050 on (RFC 5280), to the second. */
function time(date: Date): Buffer {
  const digits = date.toISOString().replace(/[-:T]|\.\d+/g, '');
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2))) : tlv(0x18, Buffer.from(digits));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = [], tail = []] = ip.split('::').map((part) => (part ? part.split(':') : []));
  const groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  return Buffer.from(
    groups.flatMap((group) => {
      const value = parseInt(group, 16);
      return [value >> 8, value & 0xff];
    }),
  );
}

/** PEM as node-forge writes it: 64 columns, CRLF line ends. */
function pem(type: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\r\n${lines.join('\r\n')}\r\n-----END ${type}-----\r\n`;
}

// --- DER -----------------------------------------------------------------------------------------

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag, ...derLength(body.length)]), body]);
}

function derLength(length: number): number[] {
  if (length < 0x80) return [length];
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return [0x80 | bytes.length, ...bytes];
}

/** An INTEGER of `bytes` as they are: the caller keeps them minimal and positive. */
function integer(bytes: Buffer): Buffer {
  return tlv(0x02, bytes);
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [40 * first + second];
  for (const arc of rest) {
    const base128 = [arc % 128];
    for (let high = Math.floor(arc / 128); high > 0; high = Math.floor(high / 128)) base128.unshift(0x80 | (high % 128));
    bytes.push(...base128);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** The values inside a constructed DER value, each whole (tag, length, content). */
function children(der: Buffer): Buffer[] {
  const [headerLength, contentLength] = lengths(der, 0);
  const items: Buffer[] = [];
  for (let at = headerLength; at < headerLength + contentLength; ) {
    const [itemHeader, itemContent] = lengths(der, at);
    items.push(der.subarray(at, at + itemHeader + itemContent));
    at += itemHeader + itemContent;
  }
  return items;
}

/** Header and content length of the DER value at `offset`. */
function lengths(der: Buffer, offset: number): [number, number] {
  const first = der[offset + 1] ?? 0;
  if (first < 0x80) return [2, first];
  const count = first & 0x7f;
  return [2 + count, der.subarray(offset + 2, offset + 2 + count).reduce((length, byte) => length * 256 + byte, 0)];
}
