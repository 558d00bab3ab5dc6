import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

interface StatusArgs extends GlobalArgs {
  probe: boolean;
}

export const statusCommand: CommandModule<GlobalArgs, StatusArgs> = {
  command: 'status',
  describe: 'Show this node: bootstrap phases, facts, config (secrets masked), key files',
  builder: (yargs) =>
    yargs.option('probe', {
      type: 'boolean',
      default: false,
      describe: 'Also ask the controller and the API server (through the VIP and locally) whether they answer',
    }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ collectStatus }, { renderStatus }, { PHASES }] = await Promise.all([
      import('../../status/collect.ts'),
      import('../../status/render.ts'),
      import('../../phases/index.ts'),
    ]);
    const report = await collectStatus(ctx.host, PHASES, { probe: args.probe });
    ctx.print(ctx.json ? JSON.stringify(report, null, 2) : renderStatus(report));
  },
};
