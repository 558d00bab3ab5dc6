import { PkeError } from '../core/errors.ts';
import { failedChecks, nodeChecks } from '../preflight/node-checks.ts';
import type { Phase } from './phase.ts';

export const preflightPhase: Phase = {
  name: 'preflight',
  summary: 'Check CPUs, memory, swap, free ports and required binaries before changing anything',
  needs: [],
  run: async (ctx) => {
    const results = await nodeChecks(ctx.host, await ctx.facts(), { role: ctx.config.role });
    for (const result of results) {
      const level = result.ok ? 'info' : result.severity === 'error' ? 'error' : 'warn';
      ctx.log[level]('preflight.check', { check: result.name, ok: result.ok, detail: result.detail });
    }
    const failed = failedChecks(results);
    if (failed.length > 0) {
      throw new PkeError(`preflight failed: ${failed.map((r) => `${r.name}: ${r.detail}`).join('; ')}`);
    }
    return undefined;
  },
};
