import { statSync, writeFileSync } from 'node:fs';
import { connect, type PeerCertificate } from 'node:tls';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PKI_FILES, type PkiBundle } from '../../agent/protocol/api.ts';
import { scratchDir } from '../helpers/cli.ts';
import { addNode, createCluster, openssl, opensslCaHash, startTestController, type TestController } from './helpers.ts';

let t: TestController;
let pki: PkiBundle;
let cluster: string;
const files = scratchDir('pki');

beforeAll(async () => {
  t = await startTestController();
  cluster = (await createCluster(t.admin)).id;
  const master = await addNode(t.admin, cluster, 'm1', 'master');
  pki = await master.client.pki();
  await master.client.close();
  for (const name of PKI_FILES) writeFileSync(path.join(files.dir, name.replace('/', '-')), pki.files[name] ?? '');
});

afterAll(async () => {
  await t?.close();
  files.remove();
});

const file = (name: string) => path.join(files.dir, name.replace('/', '-'));
const TEN_YEARS_MS = 3652 * 86_400_000;

describe('cluster PKI', () => {
  it('hands a control-plane node every shared file', () => {
    expect(Object.keys(pki.files).sort()).toEqual([...PKI_FILES].sort());
  });

  it.each([
    ['ca.crt', 'kubernetes'],
    ['etcd/ca.crt', 'etcd-ca'],
    ['front-proxy-ca.crt', 'front-proxy-ca'],
  ])('%s is a 10-year CA with subject CN=%s, as kubeadm makes it', async (name, commonName) => {
    const out = await openssl([
      'x509',
      '-in',
      file(name),
      '-noout',
      '-subject',
      '-enddate',
      '-ext',
      'basicConstraints,keyUsage,subjectAltName',
    ]);
    expect(out).toContain(`subject=CN = ${commonName}`);
    expect(out).toMatch(/CA:TRUE/);
    expect(out).toMatch(/Certificate Sign/);
    expect(out).toContain(`DNS:${commonName}`);
    const notAfter = Date.parse(/notAfter=(.+)/.exec(out)?.[1] ?? '');
    expect(Math.abs(notAfter - Date.now() - TEN_YEARS_MS)).toBeLessThan(3 * 86_400_000);
    // The key next to it is the certificate's: same public key.
    const certKey = await openssl(['x509', '-in', file(name), '-noout', '-pubkey']);
    const keyPub = await openssl(['pkey', '-in', file(name.replace('.crt', '.key')), '-pubout']);
    expect(keyPub).toBe(certKey);
  });

  it.each(['ca.key', 'etcd/ca.key', 'front-proxy-ca.key', 'sa.key'])('%s is a PKCS#1 RSA key that openssl checks', async (name) => {
    expect(pki.files[name as keyof typeof pki.files]).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expect(await openssl(['rsa', '-in', file(name), '-check', '-noout'])).toContain('RSA key ok');
    expect(await openssl(['rsa', '-in', file(name), '-noout', '-text'])).toContain('Private-Key: (2048 bit');
  });

  it('writes sa.pub as the PKIX public key of sa.key, as kubeadm does', async () => {
    expect(pki.files['sa.pub']).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const derived = await openssl(['rsa', '-in', file('sa.key'), '-pubout']);
    expect(await openssl(['pkey', '-pubin', '-in', file('sa.pub')])).toBe(derived);
  });

  it('keeps the cluster keys in the data dir, private keys mode 0600', () => {
    for (const name of PKI_FILES) {
      const mode = statSync(path.join(t.dataDir, 'clusters', cluster, 'pki', name)).mode & 0o777;
      expect({ name, mode }).toEqual({ name, mode: name.endsWith('.key') ? 0o600 : 0o644 });
    }
  });
});

describe('controller serving CA', () => {
  it('writes its CA to DATA/ca.crt and reports the pin openssl computes', async () => {
    const caCert = await readFile(path.join(t.dataDir, 'ca.crt'), 'utf8');
    expect(caCert).toBe(t.controller.caCertPem);
    expect(t.controller.caPin).toBe(await opensslCaHash(caCert));
    expect(statSync(path.join(t.dataDir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(t.dataDir, 'admin.token')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(t.dataDir, 'signing.key')).mode & 0o777).toBe(0o600);
    expect(statSync(t.dataDir).mode & 0o777).toBe(0o700);
  });

  it('serves HTTPS with an ECDSA P-256 certificate that the CA signed and that names 127.0.0.1', async () => {
    const { port } = new URL(t.controller.url);
    const peer = await new Promise<{ authorized: boolean; cert: PeerCertificate }>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: Number(port), ca: t.controller.caCertPem }, () => {
        resolve({ authorized: socket.authorized, cert: socket.getPeerCertificate() });
        socket.end();
      });
      socket.once('error', reject);
    });
    expect(peer.authorized).toBe(true);
    expect(peer.cert.asn1Curve).toBe('prime256v1');
    expect(peer.cert.subjectaltname).toContain('IP Address:127.0.0.1');
    expect(peer.cert.issuer.CN).toBe('pke-controller-ca');
  });
});
