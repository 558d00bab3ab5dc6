import { API } from '../../protocol/routes.ts';
import { bind } from '../http/route.ts';
import { nodeStatus } from '../status/cluster-status.ts';

/** `controller node remove`: starts (or resumes) a node's removal; its steps run on in the background. */
export const removeNodeRoute = bind(API.removeNode, async ({ cluster, body, runtime }) => {
  const node = await runtime.removals.start(cluster, body);
  return nodeStatus(node);
});
