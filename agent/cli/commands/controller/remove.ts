import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, PkeError } from '../../../core/errors.ts';
import { escapeControl } from '../../../core/escape.ts';
import type { Logger } from '../../../core/log.ts';
import { removalRequestSchema, type NodeStatus, type RemovalRequest } from '../../../protocol/api.ts';
import type { AdminClient } from '../../../protocol/client.ts';
import { issuePath } from '../../../core/schema-issues.ts';
import { ownValue } from '../../../core/records.ts';
import { commandContext } from '../../context.ts';
import type { NodeRemoveArgs } from '../controller.ts';
import { adminClient, asInputError } from './connect.ts';
import { parseDuration } from './flags.ts';

export const REMOVAL_FLAGS: Record<string, string> = { node: '--name', timeoutSeconds: '--timeout', force: '--force' };
export const POLL_MS = 1000;

/** The removal request from `--name`, `--force` and `--timeout`, validated where it enters. */
export function removalRequest(args: { name: string; force?: boolean; timeout?: string }): RemovalRequest {
  const parsed = removalRequestSchema.safeParse({
    node: args.name,
    force: args.force ?? false,
    ...(args.timeout === undefined ? {} : { timeoutSeconds: parseDuration('--timeout', args.timeout) }),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issuePath(issue) : '';
    throw new InputError(`${ownValue(REMOVAL_FLAGS, field) ?? field}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/**
 * Starts the removal, then (with `wait`) follows it step by step, one log line per step, until it
 * ends. A failed removal throws naming its step; the node's last status is returned otherwise.
 */
export async function runRemoval(
  client: AdminClient,
  log: Logger,
  cluster: string,
  request: RemovalRequest,
  wait: boolean,
  command: string,
): Promise<NodeStatus> {
  let node = await client.removeNode(cluster, request).catch((error: unknown) => {
    throw asInputError(error, REMOVAL_FLAGS);
  });
  const seen = new Map<string, string>();
  const report = (status: NodeStatus) => {
    for (const step of status.removal?.steps ?? []) {
      const key = `${step.state} ${step.note ?? ''}`;
      if (seen.get(step.name) === key) continue;
      seen.set(step.name, key);
      log.info('node.remove.step', { node: status.name, step: step.name, state: step.state, note: step.note });
    }
  };
  report(node);
  while (wait && node.removal?.state === 'running') {
    await sleep(POLL_MS);
    const found = (await client.status(cluster)).nodes.find((n) => n.name === node.name);
    if (!found) throw new PkeError(`node ${node.name} is no longer in cluster ${cluster}`);
    if (found.removal === undefined) {
      // Its record started over: the removal ended and provisioning issued the name again, between two looks.
      log.info('node.remove.done', { node: found.name, note: 'the name was issued again for a new VM' });
      return found;
    }
    node = found;
    report(node);
  }
  const removal = node.removal;
  if (removal?.state === 'failed') {
    const failed = removal.steps.find((s) => s.state === 'failed');
    throw new PkeError(
      `removing node ${node.name} failed at step ${failed?.name ?? removal.step ?? '?'}: ${failed?.note ?? 'no detail'}; rerun \`${command}\` to resume it there`,
    );
  }
  if (removal?.state === 'done') log.info('node.remove.done', { node: node.name });
  return node;
}

/** `controller node remove`: starts the removal, then follows it step by step until it ends. */
export async function removeNode(args: NodeRemoveArgs): Promise<void> {
  const ctx = commandContext(args);
  const request = removalRequest(args);
  const client = await adminClient(args);
  try {
    const node = await runRemoval(client, ctx.log, args.cluster, request, args.wait, 'controller node remove');
    const removal = node.removal;
    ctx.print(
      ctx.json
        ? JSON.stringify(node)
        : escapeControl(`node ${node.name}: ${node.state}${removal?.state === 'running' ? ` (step ${removal.step ?? '-'})` : ''}`),
    );
  } finally {
    await client.close();
  }
}
