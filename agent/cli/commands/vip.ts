import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

const syncCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'sync',
  describe: "Update keepalived's peers to the control-plane nodes the controller knows now (reloads only on change)",
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ syncVip }, { createNodeClient }] = await Promise.all([import('../../vip/sync.ts'), import('../../protocol/client.ts')]);
    const result = await syncVip({ host: ctx.host, log: ctx.log, connect: (config) => createNodeClient(config, { log: ctx.log }) });
    if ('skipped' in result) ctx.log.info('vip.sync-skipped', { reason: result.skipped });
    else if ('released' in result) ctx.log.info('vip.sync-released', {});
    else ctx.log.info('vip.synced', { changed: result.synced.changed, peers: result.synced.peers.join(',') || 'none' });
  },
};

export const vipCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'vip <command>',
  describe: 'The API server VIP on this control-plane node',
  builder: (yargs) => yargs.command(syncCommand).demandCommand(1),
  handler: () => {},
};
