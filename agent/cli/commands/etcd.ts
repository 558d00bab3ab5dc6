import path from 'node:path';
import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

interface RestoreArgs extends GlobalArgs {
  snapshot: string;
}

const backupCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'backup',
  describe: 'Take and upload an etcd snapshot if the controller has one due from this node (the timer runs it every minute)',
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ runBackup }, { savedConfig, controllerOf }] = await Promise.all([
      import('../../etcd/backup.ts'),
      import('./day-two/saved-controller.ts'),
    ]);
    const config = await savedConfig(ctx.host, 'etcd backup');
    if (config.role !== 'master') {
      ctx.log.info('etcd.backup-skipped', { reason: 'a worker runs no etcd member' });
      return;
    }
    const client = controllerOf(config, ctx.log);
    try {
      const result = await runBackup({ host: ctx.host, log: ctx.log, controller: client });
      if ('skipped' in result) ctx.log.info('etcd.backup-skipped', { reason: result.skipped });
      else ctx.print(JSON.stringify(result.stored));
    } finally {
      await client.close();
    }
  },
};

export const etcdCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'etcd <command>',
  describe: "This control-plane node's etcd member: snapshots for the controller",
  builder: (yargs) => yargs.command(backupCommand).demandCommand(1, 'Name an etcd command: backup.'),
  handler: () => {},
};

export const restoreCommand: CommandModule<GlobalArgs, RestoreArgs> = {
  command: 'restore',
  describe: "Roll this control-plane node's etcd, and so the cluster, back to a snapshot (first control-plane node; see the README)",
  builder: (yargs) =>
    yargs.option('snapshot', { type: 'string', demandOption: true, describe: 'The snapshot file (from `controller cluster backups`)' }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ restoreSnapshot }, { InputError }, { savedConfig }] = await Promise.all([
      import('../../etcd/restore.ts'),
      import('../../core/errors.ts'),
      import('./day-two/saved-controller.ts'),
    ]);
    const snapshot = path.resolve(args.snapshot);
    if (!(await ctx.host.exists(snapshot))) throw new InputError(`--snapshot: ${snapshot} does not exist on this node`);
    const config = await savedConfig(ctx.host, 'restore');
    const result = await restoreSnapshot({ host: ctx.host, log: ctx.log, snapshot, endpoint: config.controlPlaneEndpoint });
    ctx.print(
      JSON.stringify({ restored: true, revision: result.snapshot.revision, member: result.member.name, keptAside: result.movedAside }),
    );
  },
};
