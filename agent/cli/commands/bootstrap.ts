import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.ts';

export const bootstrapCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'bootstrap',
  describe: 'bootstrap (being built)',
  handler: () => {},
};
