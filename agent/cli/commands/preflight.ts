import type { CommandModule } from 'yargs';
import { PkeError } from '../../core/errors.ts';
import type { Role } from '../../config/schema.ts';
import { commandContext, type GlobalArgs } from '../context.ts';

interface PreflightArgs extends GlobalArgs {
  image: boolean;
  role: Role;
}

export const preflightCommand: CommandModule<GlobalArgs, PreflightArgs> = {
  command: 'preflight',
  describe: 'Check this host: resources, ports and binaries for a node (or, with --image, the VM template)',
  builder: (yargs) =>
    yargs
      .option('image', {
        type: 'boolean',
        default: false,
        describe: 'Self-test of a built VM template: everything a node needs, at the pinned versions',
      })
      .option('role', { choices: ['master', 'worker'] as const, default: 'master' as const, describe: 'The role to check for' }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ renderTable }, { failedChecks }] = await Promise.all([
      import('../../core/table.ts'),
      import('../../preflight/node-checks.ts'),
    ]);
    let results;
    if (args.image) {
      const { imageChecks } = await import('../../preflight/image.ts');
      results = await imageChecks(ctx.host);
    } else {
      const [{ nodeChecks }, { gatherFacts }] = await Promise.all([
        import('../../preflight/node-checks.ts'),
        import('../../node/facts.ts'),
      ]);
      results = await nodeChecks(ctx.host, await gatherFacts(ctx.host), { role: args.role });
    }
    ctx.print(
      ctx.json
        ? JSON.stringify({ checks: results }, null, 2)
        : renderTable(
            ['CHECK', 'RESULT', 'DETAIL'],
            results.map((r) => [r.name, r.ok ? 'ok' : r.severity === 'error' ? 'FAIL' : 'warn', r.detail]),
          ),
    );
    const failed = failedChecks(results);
    if (failed.length > 0)
      throw new PkeError(
        `preflight${args.image ? ' --image' : ''}: ${failed.length} check(s) failed: ${failed.map((r) => r.name).join(', ')}`,
      );
  },
};
