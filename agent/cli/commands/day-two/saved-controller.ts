import { parseConfig } from '../../../config/load.ts';
import type { AgentConfig } from '../../../config/schema.ts';
import { PkeError } from '../../../core/errors.ts';
import type { Logger } from '../../../core/log.ts';
import { SAVED_CONFIG_PATH } from '../../../core/state-paths.ts';
import type { Host } from '../../../host/host.ts';
import { createNodeClient, type NodeClient } from '../../../protocol/client.ts';

/** The node's saved config, and a client of its controller: day-two commands run after bootstrap. */
export async function savedConfig(host: Host, command: string): Promise<AgentConfig> {
  const saved = await host.readText(SAVED_CONFIG_PATH);
  if (saved === undefined) throw new PkeError(`${command}: no saved config at ${SAVED_CONFIG_PATH}; this node was never bootstrapped`);
  return parseConfig(`saved config ${SAVED_CONFIG_PATH}`, saved);
}

export function controllerOf(config: AgentConfig, log: Logger): NodeClient {
  // A timer runs these: a controller that is down should not hold the run for minutes.
  return createNodeClient(config, { log, retry: { retries: 3, minDelayMs: 500, maxDelayMs: 5000 } });
}
