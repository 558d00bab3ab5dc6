import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context.ts';

export const controllerCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'controller',
  describe: 'controller (being built)',
  handler: () => {},
};
