import { connect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startTestController, type TestController } from './helpers.ts';

/** What a client of the controller meets before any route: the serving certificate and TLS. */

let t: TestController;

beforeAll(async () => {
  t = await startTestController({ sans: ['controller.example.net', '198.51.100.9'] });
});

afterAll(() => t?.close());

function handshake(options: Partial<ConnectionOptions>): Promise<{ cipher: string; certificate: PeerCertificate } | { error: string }> {
  const { hostname, port } = new URL(t.controller.url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), ca: t.controller.caCertPem, ...options }, () => {
      resolve({ cipher: socket.getCipher().name, certificate: socket.getPeerCertificate() });
      socket.destroy();
    });
    socket.once('error', (error) => resolve({ error: error.message }));
  });
}

describe('TLS', () => {
  it('names only loopback, the advertise address and the --san values in its certificate', async () => {
    const answer = await handshake({});
    if ('error' in answer) throw new Error(answer.error);
    const names = (answer.certificate.subjectaltname ?? '').split(', ').sort();
    expect(names).toEqual(
      [
        'DNS:controller.example.net',
        'DNS:localhost',
        'IP Address:0:0:0:0:0:0:0:1',
        'IP Address:127.0.0.1',
        'IP Address:198.51.100.9',
      ].sort(),
    );
  });

  it('speaks TLS 1.2 with AEAD suites only', async () => {
    const cbc = await handshake({
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA',
    });
    expect(cbc).toHaveProperty('error');
    const gcm = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    expect(gcm).toMatchObject({ cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    expect(await handshake({ minVersion: 'TLSv1.3' })).toHaveProperty('cipher');
  });

  it('answers HEAD /livez as GET, without a body', async () => {
    const dispatcher = new Agent({ connect: { ca: t.controller.caCertPem } });
    const answer = await request(`${t.controller.url}/livez`, { method: 'HEAD', dispatcher });
    expect(answer.statusCode).toBe(200);
    expect(await answer.body.text()).toBe('');
    await dispatcher.close();
  });
});
