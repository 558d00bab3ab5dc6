import { InputError } from '../../../core/errors.ts';
import { scaleRequestSchema } from '../../../protocol/api.ts';
import { commandContext } from '../../context.ts';
import type { PoolScaleArgs } from '../controller.ts';
import { adminClient, asInputError } from './connect.ts';

const SCALE_FLAGS: Record<string, string> = { pool: '--pool', size: '--size' };

/** Sets a pool's size; the controller's provisioning reaches it (see `controller status`). */
export async function scalePool(args: PoolScaleArgs): Promise<void> {
  const ctx = commandContext(args);
  const parsed = scaleRequestSchema.safeParse({ pool: args.pool, size: args.size });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? '');
    throw new InputError(`${SCALE_FLAGS[field] ?? field}: ${issue?.message ?? 'invalid'}`);
  }
  const client = await adminClient(args);
  try {
    const cluster = await client.scalePool(args.cluster, parsed.data).catch((error: unknown) => {
      throw asInputError(error, SCALE_FLAGS);
    });
    const pool = cluster.spec.pools.find((p) => p.name === parsed.data.pool);
    ctx.print(
      ctx.json
        ? JSON.stringify({ cluster: cluster.name, pool: parsed.data.pool, size: pool?.size })
        : `pool ${parsed.data.pool} of ${cluster.name}: size ${pool?.size}; \`pke-agent controller status --cluster ${cluster.name}\` shows the VMs`,
    );
  } finally {
    await client.close();
  }
}
