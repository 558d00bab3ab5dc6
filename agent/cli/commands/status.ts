import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.ts';

export const statusCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'status',
  describe: 'status (being built)',
  handler: () => {},
};
