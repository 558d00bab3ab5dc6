import { randomBytes, webcrypto } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import { accessTokenRoleSchema, roleSchema, type AccessTokenRole } from '../../protocol/api.ts';

/**
 * Bearer tokens: JWTs signed with HS256 and a 32-byte key from the data dir. The controller is
 * both the only issuer and the only verifier, so a shared secret is all it needs; HS256 keeps
 * tokens short (guestinfo is small) and verification cheap (every request carries one).
 */

const TOKEN_ISSUER = 'pke-controller';
const ALGORITHM = 'HS256';

const nodeClaimsSchema = z.object({
  kind: z.literal('node'),
  sub: z.string(),
  cluster: z.string(),
  role: roleSchema,
  pool: z.string(),
  jti: z.string(),
  exp: z.number(),
});
const adminClaimsSchema = z.object({ kind: z.literal('admin'), jti: z.string() });
const accessClaimsSchema = z.object({ kind: z.literal('access'), role: accessTokenRoleSchema, jti: z.string(), exp: z.number() });
const claimsSchema = z.discriminatedUnion('kind', [nodeClaimsSchema, adminClaimsSchema, accessClaimsSchema]);

export type NodePrincipal = {
  kind: 'node';
  node: string;
  cluster: string;
  role: z.infer<typeof roleSchema>;
  pool: string;
  jti: string;
  /** Epoch ms. */
  expiresAt: number;
};
/** A viewer or metrics token: reads the view, the timeline and /metrics (metrics: /metrics only). */
export type AccessPrincipal = { kind: 'access'; role: AccessTokenRole; jti: string; expiresAt: number };
export type Principal = NodePrincipal | AccessPrincipal | { kind: 'admin'; jti: string };

/** Why a token was refused; `expired` gets its own code so the client can say so. */
export class TokenRejected extends Error {
  readonly reason: 'invalid' | 'expired';
  constructor(reason: 'invalid' | 'expired', message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface MintedToken {
  token: string;
  jti: string;
  expiresAt: number;
}

/** Verified tokens kept, so that a node's later requests skip the signature check (bounded). */
const VERIFIED_CACHE_SIZE = 20_000;

export class TokenAuthority {
  private readonly key: webcrypto.CryptoKey;
  /** Token → principal and expiry (epoch ms). Only tokens that verified are here. */
  private readonly verified = new Map<string, { principal: Principal; expiresAt: number }>();

  private constructor(key: webcrypto.CryptoKey) {
    this.key = key;
  }

  /** From the raw 32-byte key. A WebCrypto key, imported once: jose verifies with it 3x faster than with a KeyObject. */
  static async fromSecret(secret: Uint8Array): Promise<TokenAuthority> {
    return new TokenAuthority(
      await webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']),
    );
  }

  async mintNodeToken(claims: {
    cluster: string;
    node: string;
    role: NodePrincipal['role'];
    pool: string;
    ttlSeconds: number;
  }): Promise<MintedToken> {
    const jti = newTokenId();
    const issuedAt = Math.floor(Date.now() / 1000);
    const exp = issuedAt + claims.ttlSeconds;
    const token = await new SignJWT({ kind: 'node', cluster: claims.cluster, role: claims.role, pool: claims.pool })
      .setProtectedHeader({ alg: ALGORITHM })
      .setIssuer(TOKEN_ISSUER)
      .setSubject(claims.node)
      .setJti(jti)
      .setIssuedAt(issuedAt)
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, jti, expiresAt: exp * 1000 };
  }

  /** A viewer or metrics token; the caller records its `jti` in the state, which is what keeps it valid. */
  async mintAccessToken(claims: { role: AccessTokenRole; ttlSeconds: number }): Promise<MintedToken> {
    const jti = newTokenId();
    const issuedAt = Math.floor(Date.now() / 1000);
    const exp = issuedAt + claims.ttlSeconds;
    const token = await new SignJWT({ kind: 'access', role: claims.role })
      .setProtectedHeader({ alg: ALGORITHM })
      .setIssuer(TOKEN_ISSUER)
      .setSubject(claims.role)
      .setJti(jti)
      .setIssuedAt(issuedAt)
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, jti, expiresAt: exp * 1000 };
  }

  /** The admin token does not expire; it is replaced by writing a new admin.token (see data-dir.ts). */
  async mintAdminToken(): Promise<{ token: string; jti: string }> {
    const jti = newTokenId();
    const token = await new SignJWT({ kind: 'admin' })
      .setProtectedHeader({ alg: ALGORITHM })
      .setIssuer(TOKEN_ISSUER)
      .setSubject('admin')
      .setJti(jti)
      .setIssuedAt()
      .sign(this.key);
    return { token, jti };
  }

  /**
   * Checks signature, algorithm (HS256 only: `none` and others are refused), issuer and expiry.
   * A token that verified is remembered until it expires; revocation is checked by the caller
   * on every request, so remembering never lets a revoked token through.
   */
  async verify(token: string): Promise<Principal> {
    const known = this.verified.get(token);
    if (known && Date.now() < known.expiresAt) return known.principal;
    if (known) this.verified.delete(token);
    const principal = await this.verifySignature(token);
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value ?? '');
    this.verified.set(token, { principal, expiresAt: principal.kind === 'admin' ? Number.MAX_SAFE_INTEGER : principal.expiresAt });
    return principal;
  }

  private async verifySignature(token: string): Promise<Principal> {
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: [ALGORITHM], issuer: TOKEN_ISSUER }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new TokenRejected('expired', 'the token has expired; render a new node config');
      if (error instanceof joseErrors.JOSEAlgNotAllowed) throw new TokenRejected('invalid', 'the token is not signed with HS256');
      if (error instanceof joseErrors.JWSSignatureVerificationFailed)
        throw new TokenRejected('invalid', 'the token signature does not verify');
      throw new TokenRejected('invalid', 'the token is not a valid controller token');
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw new TokenRejected('invalid', 'the token does not carry the claims of a controller token');
    const c = claims.data;
    if (c.kind === 'admin') return { kind: 'admin', jti: c.jti };
    if (c.kind === 'access') return { kind: 'access', role: c.role, jti: c.jti, expiresAt: c.exp * 1000 };
    return { kind: 'node', node: c.sub, cluster: c.cluster, role: c.role, pool: c.pool, jti: c.jti, expiresAt: c.exp * 1000 };
  }
}

function newTokenId(): string {
  return randomBytes(16).toString('base64url');
}
