import { InputError } from '../../../core/errors.ts';
import { ownValue } from '../../../core/records.ts';
import { issuePath } from '../../../core/schema-issues.ts';
import { formatGuestinfo } from '../../../controller/node-config/formats.ts';
import { nodeConfigRequestSchema, type NodeConfigRequest } from '../../../protocol/api.ts';
import { commandContext } from '../../context.ts';
import type { NodeConfigArgs, RevokeArgs } from '../controller.ts';
import { adminClient, asInputError } from './connect.ts';
import { parseDuration } from './flags.ts';

const NODE_FLAGS: Record<string, string> = { name: '--name', role: '--role', pool: '--pool', tokenTtlSeconds: '--token-ttl' };

/** Prints one VM's guestinfo in the asked format; the token's id and expiry go to the log. */
export async function nodeConfig(args: NodeConfigArgs): Promise<void> {
  const ctx = commandContext(args);
  const request: NodeConfigRequest = {
    name: args.name,
    role: args.role,
    ...(args.pool === undefined ? {} : { pool: args.pool }),
    ...(args['token-ttl'] === undefined ? {} : { tokenTtlSeconds: parseDuration('--token-ttl', args['token-ttl']) }),
  };
  const parsed = nodeConfigRequestSchema.safeParse(request);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issuePath(issue) : '';
    throw new InputError(`${ownValue(NODE_FLAGS, field) ?? field}: ${issue?.message ?? 'invalid'}`);
  }
  const client = await adminClient(args);
  try {
    const config = await client.nodeConfig(args.cluster, parsed.data).catch((error: unknown) => {
      throw asInputError(error, NODE_FLAGS);
    });
    ctx.log.info('node-config', {
      cluster: config.cluster.id,
      node: config.node,
      role: config.role,
      pool: config.pool,
      jti: config.tokenId,
      expires: config.tokenExpiresAt,
      bytes: config.encodedBytes,
    });
    ctx.print(formatGuestinfo(args.format, config.node, config.guestinfo));
  } finally {
    await client.close();
  }
}

export async function revoke(args: RevokeArgs): Promise<void> {
  const ctx = commandContext(args);
  if ((args.name === undefined) === (args.jti === undefined)) throw new InputError('give exactly one of --name and --jti');
  const client = await adminClient(args);
  try {
    const answer = await client
      .revoke(args.cluster, args.name !== undefined ? { node: args.name } : { jti: args.jti ?? '' })
      .catch((error: unknown) => {
        throw asInputError(error, { node: '--name', jti: '--jti' });
      });
    ctx.print(
      ctx.json ? JSON.stringify(answer) : answer.revoked.length === 0 ? 'no live tokens to revoke' : `revoked ${answer.revoked.join(', ')}`,
    );
  } finally {
    await client.close();
  }
}
