import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueCertificate, type CertifiedKey, type LeafOptions } from '../../agent/controller/clusters/pki.ts';
import { issueEcdsaLeaf } from './standin-x509.ts';

/** A DER value as its tag and either its content (hex) or, when constructed, its parts. */
type Der = { tag: number; hex: string } | { tag: number; parts: Der[] };

function parseDer(bytes: Buffer): Der[] {
  const values: Der[] = [];
  for (let at = 0; at < bytes.length; ) {
    const tag = bytes[at] ?? 0;
    let length = bytes[at + 1] ?? 0;
    let header = 2;
    if (length >= 0x80) {
      header += length & 0x7f;
      length = bytes.subarray(at + 2, at + header).reduce((n, byte) => n * 256 + byte, 0);
    }
    const content = bytes.subarray(at + header, at + header + length);
    values.push(tag & 0x20 ? { tag, parts: parseDer(content) } : { tag, hex: content.toString('hex') });
    at += header + length;
  }
  return values;
}

/** The TBSCertificate with what differs from one issue to the next blanked: serial, validity, public key. */
function comparableTbs(pem: string): Der[] {
  const [certificate] = parseDer(new X509Certificate(pem).raw);
  const [tbs] = certificate && 'parts' in certificate ? certificate.parts : [];
  if (!tbs || !('parts' in tbs)) throw new Error('not a certificate');
  const blanked = { tag: 0, hex: '' };
  return tbs.parts.map((part, i) => ([1, 4, 6].includes(i) ? blanked : part));
}

describe('the kubeadm stand-in’s certificates', () => {
  let ca: CertifiedKey;
  beforeAll(async () => {
    ca = await createCa('kubernetes');
  });

  const cases: [string, Omit<LeafOptions, 'keyType'>][] = [
    [
      'a serving certificate with DNS names and IPv4 and IPv6 addresses',
      {
        commonName: 'kube-apiserver',
        altNames: ['kubernetes', 'kubernetes.default.svc.cluster.local', '10.96.0.1', '::1', 'fd00:10::1:2'],
        usage: 'server',
        validDays: 365,
      },
    ],
    [
      'a client certificate with a group',
      { commonName: 'system:node:w-1', organizations: ['system:nodes'], usage: 'client', validDays: 365 },
    ],
    [
      'a server-and-client certificate with two groups',
      { commonName: 'cp-1', organizations: ['a', 'b'], altNames: ['localhost'], usage: 'server-and-client', validDays: 1 },
    ],
  ];
  it.each(cases)('are what the controller’s PKI code issues: %s', async (_, options) => {
    const theirs = await issueCertificate(ca, { ...options, keyType: 'ecdsa' });
    const ours = issueEcdsaLeaf(ca, options);

    expect(comparableTbs(ours.certPem)).toEqual(comparableTbs(theirs.certPem));
    const cert = new X509Certificate(ours.certPem);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(Date.parse(cert.validTo) - Date.parse(cert.validFrom)).toBe(options.validDays * 86_400_000 + 5 * 60_000);
    // PEM as node-forge writes it (64 columns, CRLF), the key as node:crypto does.
    const lineLengths = (pem: string) => pem.split('\r\n').map((line) => line.length);
    expect(lineLengths(ours.certPem)).toEqual(lineLengths(theirs.certPem));
    expect(ours.keyPem.split('\n')[0]).toBe(theirs.keyPem.split('\n')[0]);
  });
});
