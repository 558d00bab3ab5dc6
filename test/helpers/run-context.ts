import { NO_LEASE } from '../../agent/bootstrap/lease-keeper.ts';
import { agentConfigSchema } from '../../agent/config/schema.ts';
import { silentLogger } from '../../agent/core/log.ts';
import type { Host } from '../../agent/host/host.ts';
import type { PhaseContext } from '../../agent/phases/phase.ts';
import { validConfig } from './agent-config.ts';

/** What the runner hands its test phases: a valid config, the host, no controller, lease or facts. */
export function runContext(host: Host, overrides: Partial<PhaseContext> = {}): Omit<PhaseContext, 'outputs'> {
  return {
    config: agentConfigSchema.parse(validConfig()),
    host,
    log: silentLogger,
    controller: undefined as never,
    signal: new AbortController().signal,
    lease: NO_LEASE,
    facts: undefined as never,
    ...overrides,
  };
}
