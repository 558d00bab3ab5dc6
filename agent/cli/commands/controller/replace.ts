import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, PkeError } from '../../../core/errors.ts';
import { escapeControl } from '../../../core/escape.ts';
import type { NodeStatus } from '../../../protocol/api.ts';
import { commandContext } from '../../context.ts';
import type { NodeReplaceArgs } from '../controller.ts';
import { adminClient } from './connect.ts';
import { parseDuration } from './flags.ts';
import { POLL_MS, removalRequest, runRemoval } from './remove.ts';

const DEFAULT_READY_TIMEOUT = '20m';
const WITHOUT_PROVISIONING = 'without provisioning, replace is `node remove` then a new VM made with `node-config`';

/**
 * `controller node replace`: removes the node (every step of `node remove`, its VM destroyed), then
 * waits while the pools' reconciler clones the same name on a new VM and the node joins again, until
 * it is Ready there. One node at a time: the command returns only once the new node is Ready.
 */
export async function replaceNode(args: NodeReplaceArgs): Promise<void> {
  const ctx = commandContext(args);
  const request = removalRequest(args);
  const readyTimeout = args['ready-timeout'] ?? DEFAULT_READY_TIMEOUT;
  const readySeconds = parseDuration('--ready-timeout', readyTimeout);
  const client = await adminClient(args);
  try {
    const before = await client.status(args.cluster);
    if (before.provisioning === undefined)
      throw new InputError(`cluster ${args.cluster}: the controller does not provision its VMs; ${WITHOUT_PROVISIONING}`);
    const old = before.nodes.find((n) => n.name === request.node)?.vm;
    // A node that is not there at all is left to the removal, which names it as `node remove` does.
    if (before.nodes.some((n) => n.name === request.node) && old === undefined)
      throw new InputError(`--name: node ${request.node} has no VM the controller provisioned; ${WITHOUT_PROVISIONING}`);
    ctx.log.info('node.replace.start', { node: request.node, vm: old?.moref });

    await runRemoval(client, ctx.log, args.cluster, request, true, 'controller node replace');

    const deadline = Date.now() + readySeconds * 1000;
    let cloned: NodeStatus['vm'];
    let last: NodeStatus | undefined;
    while (Date.now() < deadline) {
      last = (await client.status(args.cluster)).nodes.find((n) => n.name === request.node);
      const vm = last?.vm;
      if (vm && vm.moref !== old?.moref && cloned?.moref !== vm.moref) {
        cloned = vm;
        ctx.log.info('node.replace.cloned', { node: request.node, vm: vm.moref, biosUuid: vm.biosUuid });
      }
      if (cloned && last?.state === 'ready') break;
      await sleep(POLL_MS);
    }
    if (!cloned || last?.state !== 'ready') {
      const why = last?.vm?.error ?? last?.lastError;
      throw new PkeError(
        escapeControl(
          cloned
            ? `node ${request.node}: the new VM ${cloned.moref} did not become Ready within ${readyTimeout} (state ${last?.state ?? 'gone'}${why ? `: ${why}` : ''})`
            : `node ${request.node}: removed, but no new VM was cloned for it within ${readyTimeout}${why ? ` (${why})` : ''}`,
        ),
      );
    }
    ctx.log.info('node.replace.ready', { node: request.node, vm: cloned.moref });
    ctx.print(
      ctx.json
        ? JSON.stringify(last)
        : escapeControl(`node ${request.node}: ready on VM ${cloned.moref} (BIOS UUID ${cloned.biosUuid}), replacing ${old?.moref ?? '-'}`),
    );
  } finally {
    await client.close();
  }
}
