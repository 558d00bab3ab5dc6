import { nameRecord } from '../../core/records.ts';
import type { AccessTokenInfo } from '../../protocol/api.ts';
import { API } from '../../protocol/routes.ts';
import { notFound } from '../http/problem.ts';
import { bind } from '../http/route.ts';
import type { AccessTokenState } from '../store/state.ts';

/** Viewer and metrics tokens (admin): minted, listed, revoked. Only tokens the state lists pass. */

export const createAccessTokenRoute = bind(API.createAccessToken, async ({ body, runtime }) => {
  const minted = await runtime.tokens.mintAccessToken({ role: body.role, ttlSeconds: body.ttlSeconds });
  const record: AccessTokenState = { role: body.role, name: body.name, createdAt: Date.now(), expiresAt: minted.expiresAt };
  runtime.store.mutate((state, touch) => {
    const tokens = (state.accessTokens ??= nameRecord());
    for (const [jti, token] of Object.entries(tokens)) if (token.expiresAt <= record.createdAt) delete tokens[jti];
    tokens[minted.jti] = record;
    touch.root();
  });
  runtime.log.info('token.created', { role: body.role, name: body.name, jti: minted.jti });
  return { token: minted.token, ...info(minted.jti, record) };
});

export const listAccessTokensRoute = bind(API.listAccessTokens, ({ runtime }) => {
  const now = Date.now();
  const tokens = Object.entries(runtime.store.state.accessTokens ?? {})
    .filter(([, token]) => token.expiresAt > now)
    .sort(([, a], [, b]) => a.createdAt - b.createdAt)
    .map(([jti, token]) => info(jti, token));
  return { tokens };
});

export const revokeAccessTokenRoute = bind(API.revokeAccessToken, ({ body, runtime }) => {
  runtime.store.mutate((state, touch) => {
    if (state.accessTokens?.[body.jti] === undefined) throw notFound(`no viewer or metrics token with jti ${body.jti}`);
    delete state.accessTokens[body.jti];
    touch.root();
  });
  runtime.log.info('token.revoked', { jti: body.jti });
});

function info(jti: string, token: AccessTokenState): AccessTokenInfo {
  return {
    jti,
    role: token.role,
    name: token.name,
    createdAt: new Date(token.createdAt).toISOString(),
    expiresAt: new Date(token.expiresAt).toISOString(),
  };
}
