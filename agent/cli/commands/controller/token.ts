import { InputError } from '../../../core/errors.ts';
import { escapeControl } from '../../../core/escape.ts';
import { ownValue } from '../../../core/records.ts';
import { issuePath } from '../../../core/schema-issues.ts';
import { renderTable } from '../../../core/table.ts';
import { accessTokenRequestSchema } from '../../../protocol/api.ts';
import { commandContext } from '../../context.ts';
import type { TokenCreateArgs, TokenRevokeArgs, ConnectionArgs } from '../controller.ts';
import { adminClient, asInputError } from './connect.ts';
import { parseDuration } from './flags.ts';

const TOKEN_FLAGS: Record<string, string> = { role: '--role', name: '--name', ttlSeconds: '--ttl' };

/** Prints the token alone on stdout (for a file or a secret store); its id and expiry go to the log. */
export async function createToken(args: TokenCreateArgs): Promise<void> {
  const ctx = commandContext(args);
  const parsed = accessTokenRequestSchema.safeParse({
    role: args.role,
    ...(args.name === undefined ? {} : { name: args.name }),
    ...(args.ttl === undefined ? {} : { ttlSeconds: parseDuration('--ttl', args.ttl) }),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issuePath(issue) : '';
    throw new InputError(`${ownValue(TOKEN_FLAGS, field) ?? field}: ${issue?.message ?? 'invalid'}`);
  }
  const client = await adminClient(args);
  try {
    const token = await client.createAccessToken(parsed.data).catch((error: unknown) => {
      throw asInputError(error, TOKEN_FLAGS);
    });
    ctx.log.info('token.created', { role: token.role, name: token.name, jti: token.jti, expires: token.expiresAt });
    ctx.print(ctx.json ? JSON.stringify(token) : token.token);
  } finally {
    await client.close();
  }
}

export async function listTokens(args: ConnectionArgs): Promise<void> {
  const ctx = commandContext(args);
  const client = await adminClient(args);
  try {
    const { tokens } = await client.listAccessTokens();
    if (ctx.json) ctx.print(JSON.stringify({ tokens }));
    else if (tokens.length === 0) ctx.print('no viewer or metrics tokens');
    else
      ctx.print(
        renderTable(
          ['JTI', 'ROLE', 'NAME', 'CREATED', 'EXPIRES'],
          tokens.map((t) => [t.jti, t.role, escapeControl(t.name ?? '-'), t.createdAt, t.expiresAt]),
        ),
      );
  } finally {
    await client.close();
  }
}

export async function revokeToken(args: TokenRevokeArgs): Promise<void> {
  const ctx = commandContext(args);
  const client = await adminClient(args);
  try {
    await client.revokeAccessToken(args.jti).catch((error: unknown) => {
      throw asInputError(error, { jti: '--jti' });
    });
    ctx.print(ctx.json ? JSON.stringify({ revoked: [args.jti] }) : `revoked ${args.jti}`);
  } finally {
    await client.close();
  }
}
