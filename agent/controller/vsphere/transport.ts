import { createHash, X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Pool, buildConnector } from 'undici';
import { PkeError } from '../../core/errors.ts';

/**
 * The HTTPS connections to one vCenter: kept alive (undici's pool), TLS verified against the CA
 * given, or pinned to the certificate's fingerprint, or (asked for by name) not at all.
 */

export interface VsphereTls {
  /** PEM CAs to trust instead of the system's. */
  ca?: string;
  /** SHA-1 or SHA-256 fingerprint of vCenter's certificate, hex pairs joined by colons. */
  thumbprint?: string;
  /** No verification: labs with self-signed certificates, only when asked for. */
  insecure?: boolean;
}

/** How many calls may be in flight to one vCenter at once (clones run in parallel). */
const CONNECTIONS = 16;

export function vspherePool(origin: string, tls: VsphereTls): Pool {
  if (tls.thumbprint === undefined) {
    return new Pool(origin, {
      connections: CONNECTIONS,
      connect: { ca: tls.ca, rejectUnauthorized: tls.insecure !== true },
      keepAliveTimeout: 30_000,
    });
  }
  // Pinned: the chain is not checked, the certificate must be the one named.
  // No resumed sessions: a resumed TLS session shows no certificate to check.
  const connect = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
  const wanted = normalizeFingerprint(tls.thumbprint);
  return new Pool(origin, {
    connections: CONNECTIONS,
    keepAliveTimeout: 30_000,
    connect: (options, callback) =>
      connect(options, (error, socket) => {
        if (error || !socket) return callback(error ?? new Error('no socket'), null);
        const raw = (socket as TLSSocket).getPeerCertificate?.().raw;
        const seen = raw ? fingerprintOf(raw, wanted.length === 40 ? 'sha1' : 'sha256') : '';
        if (seen !== wanted) {
          socket.destroy();
          return callback(
            new PkeError(
              `vCenter ${options.hostname}:${options.port}: its certificate's fingerprint is ${colons(seen)}, not ${tls.thumbprint}`,
            ),
            null,
          );
        }
        callback(null, socket);
      }),
  });
}

function normalizeFingerprint(text: string): string {
  return text.replaceAll(':', '').toLowerCase();
}

function fingerprintOf(der: Buffer, algorithm: 'sha1' | 'sha256'): string {
  return createHash(algorithm).update(der).digest('hex');
}

function colons(hex: string): string {
  return (hex.match(/../g) ?? []).join(':').toUpperCase();
}

/** The SHA-256 fingerprint of a PEM certificate, as `--thumbprint` takes it. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
