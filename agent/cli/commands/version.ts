import type { CommandModule } from 'yargs';
import { AGENT_COMMIT, AGENT_VERSION } from '../../core/version.ts';
import type { GlobalArgs } from '../context.ts';

export function versionText(json: boolean): string {
  const info = { version: AGENT_VERSION, commit: AGENT_COMMIT, node: process.versions.node };
  return json ? JSON.stringify(info) : `pke-agent ${info.version} (commit ${info.commit}, node ${info.node})`;
}

export const versionCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'version',
  describe: 'Print the agent version',
  handler: (args) => {
    process.stdout.write(`${versionText(args.json)}\n`);
  },
};
