import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

interface ConfigShowArgs extends GlobalArgs {
  config?: string;
}

const showCommand: CommandModule<GlobalArgs, ConfigShowArgs> = {
  command: 'show',
  describe: 'Find and check the agent config as bootstrap would (nothing is written or redacted); print it without secrets',
  builder: (yargs) =>
    yargs.option('config', { type: 'string', describe: 'Read the config from this YAML or JSON file instead of guestinfo' }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ loadConfig, describeSource }, { summarizeConfig }, { renderFields }] = await Promise.all([
      import('../../config/load.ts'),
      import('../../config/summary.ts'),
      import('../../core/table.ts'),
    ]);
    const loaded = await loadConfig({ host: ctx.host, file: args.config });
    const summary = { source: describeSource(loaded.source), ...summarizeConfig(loaded.config) };
    ctx.print(
      ctx.json
        ? JSON.stringify(summary, null, 2)
        : renderFields(Object.entries(summary).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)])),
    );
  },
};

export const configCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'config <command>',
  describe: 'Inspect the agent config',
  builder: (yargs) => yargs.command(showCommand).demandCommand(1),
  handler: () => {},
};
