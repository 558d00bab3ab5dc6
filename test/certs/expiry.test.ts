import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { daysLeft, expiryWarnings, readLeafCertificates } from '../../agent/certs/expiry.ts';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import { collectStatus } from '../../agent/status/collect.ts';
import { renderStatus } from '../../agent/status/render.ts';
import { adminKubeconfig } from '../standins/apiserver-standin.ts';
import { scratchHost, type ScratchHost } from '../helpers/cli.ts';

/** The expiry a control-plane node sees of its kubeadm leaf certificates, files and kubeconfigs alike, and the status warning. */

let node: ScratchHost;
/** Taken once the certificates are made: each then has a little under its whole number of days left. */
let now: Date;

beforeAll(async () => {
  node = scratchHost('certs');
  const ca = await createCa('kubernetes');
  const leaf = (validDays: number) => issueCertificate(ca, { keyType: 'ecdsa', commonName: 'x', usage: 'server-and-client', validDays });
  await node.host.writeFile('/etc/kubernetes/pki/apiserver.crt', (await leaf(365)).certPem);
  await node.host.writeFile('/etc/kubernetes/pki/etcd/server.crt', (await leaf(12)).certPem);
  await node.host.writeFile('/etc/kubernetes/admin.conf', adminKubeconfig('https://10.0.0.1:6443', ca.certPem, await leaf(40)), {
    mode: 0o600,
  });
  now = new Date();
});
afterAll(() => node?.remove());

describe('leaf certificate expiry', () => {
  it('reads the PKI files and the client certificates inside kubeconfigs, leaving out what the node does not have', async () => {
    const found = await readLeafCertificates(node.host);
    expect(found.map((c) => [c.name, daysLeft(c, now)])).toEqual([
      ['apiserver.crt', 364],
      ['etcd/server.crt', 11],
      ['admin.conf', 39],
    ]);
    expect(found[0]?.path).toBe('/etc/kubernetes/pki/apiserver.crt');
  });

  it('warns for what expires within 30 days, and status shows it', async () => {
    const warnings = expiryWarnings(await readLeafCertificates(node.host), now);
    expect(warnings).toEqual([
      expect.stringMatching(/^certificate etcd\/server\.crt expires at .* \(in 11 days\); run pke-agent certs renew$/),
    ]);
    const report = await collectStatus(node.host, [], { probe: false });
    expect(report.warnings).toEqual(warnings);
    const text = renderStatus(report);
    expect(text).toMatch(/Certs\s+3 kubeadm leaf certificates, soonest etcd\/server\.crt at .* \(11 days\)/);
    expect(text).toContain(`WARNING     ${warnings[0]}`);
  });
});
