import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, PkeError } from '../../../core/errors.ts';
import { escapeControl } from '../../../core/escape.ts';
import { removalRequestSchema, type NodeStatus } from '../../../protocol/api.ts';
import { issuePath } from '../../../core/schema-issues.ts';
import { ownValue } from '../../../core/records.ts';
import { commandContext } from '../../context.ts';
import type { NodeRemoveArgs } from '../controller.ts';
import { adminClient, asInputError } from './connect.ts';
import { parseDuration } from './flags.ts';

const FLAGS: Record<string, string> = { node: '--name', timeoutSeconds: '--timeout', force: '--force' };
const POLL_MS = 1000;

/** `controller node remove`: starts the removal, then follows it step by step (one log line per step) until it ends. */
export async function removeNode(args: NodeRemoveArgs): Promise<void> {
  const ctx = commandContext(args);
  const parsed = removalRequestSchema.safeParse({
    node: args.name,
    force: args.force ?? false,
    ...(args.timeout === undefined ? {} : { timeoutSeconds: parseDuration('--timeout', args.timeout) }),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issuePath(issue) : '';
    throw new InputError(`${ownValue(FLAGS, field) ?? field}: ${issue?.message ?? 'invalid'}`);
  }
  const client = await adminClient(args);
  try {
    let node = await client.removeNode(args.cluster, parsed.data).catch((error: unknown) => {
      throw asInputError(error, FLAGS);
    });
    const seen = new Map<string, string>();
    const report = (status: NodeStatus) => {
      for (const step of status.removal?.steps ?? []) {
        const key = `${step.state} ${step.note ?? ''}`;
        if (seen.get(step.name) === key) continue;
        seen.set(step.name, key);
        ctx.log.info('node.remove.step', { node: status.name, step: step.name, state: step.state, note: step.note });
      }
    };
    report(node);
    while (args.wait && node.removal?.state === 'running') {
      await sleep(POLL_MS);
      const found = (await client.status(args.cluster)).nodes.find((n) => n.name === node.name);
      if (!found) throw new PkeError(`node ${node.name} is no longer in cluster ${args.cluster}`);
      node = found;
      report(node);
    }
    const removal = node.removal;
    if (removal?.state === 'failed') {
      const failed = removal.steps.find((s) => s.state === 'failed');
      throw new PkeError(
        `removing node ${node.name} failed at step ${failed?.name ?? removal.step ?? '?'}: ${failed?.note ?? 'no detail'}; rerun \`controller node remove\` to resume it there`,
      );
    }
    ctx.print(
      ctx.json
        ? JSON.stringify(node)
        : escapeControl(`node ${node.name}: ${node.state}${removal?.state === 'running' ? ` (step ${removal.step ?? '-'})` : ''}`),
    );
  } finally {
    await client.close();
  }
}
