import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.ts';

export const preflightCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'preflight',
  describe: 'preflight (being built)',
  handler: () => {},
};
