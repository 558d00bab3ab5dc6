import path from 'node:path';
import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

interface RestoreArgs extends GlobalArgs {
  snapshot?: string;
  rejoin: boolean;
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
  describe:
    "Roll this control-plane node's etcd, and so the cluster, back to a snapshot (one control-plane node); then --rejoin on each other one (see the README)",
  builder: (yargs) =>
    yargs
      .option('snapshot', { type: 'string', describe: 'The snapshot file (from `controller cluster backups`)' })
      .option('rejoin', {
        type: 'boolean',
        default: false,
        describe: 'On each other control-plane node after the restore, one at a time: kubeadm reset, then join the restored cluster',
      })
      .check((args) => {
        if ((args.snapshot === undefined) === !args.rejoin) throw new Error('Give either --snapshot FILE (the restore) or --rejoin');
        return true;
      }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const { savedConfig, controllerOf } = await import('./day-two/saved-controller.ts');
    const config = await savedConfig(ctx.host, 'restore');
    if (args.rejoin) {
      const [{ rejoinAfterRestore }, { PkeError }] = await Promise.all([
        import('../../bootstrap/rejoin.ts'),
        import('../../core/errors.ts'),
      ]);
      const client = controllerOf(config, ctx.log);
      const stop = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => stop.abort(new PkeError(`restore --rejoin interrupted by ${signal}`));
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      try {
        await rejoinAfterRestore({ host: ctx.host, log: ctx.log, config, controller: client, signal: stop.signal });
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        await client.close();
      }
      ctx.print(JSON.stringify({ rejoined: true }));
      return;
    }
    const [{ restoreSnapshot }, { InputError }] = await Promise.all([import('../../etcd/restore.ts'), import('../../core/errors.ts')]);
    const snapshot = path.resolve(args.snapshot!);
    if (!(await ctx.host.exists(snapshot))) throw new InputError(`--snapshot: ${snapshot} does not exist on this node`);
    const result = await restoreSnapshot({ host: ctx.host, log: ctx.log, snapshot, endpoint: config.controlPlaneEndpoint });
    ctx.print(
      JSON.stringify({ restored: true, revision: result.snapshot.revision, member: result.member.name, keptAside: result.movedAside }),
    );
  },
};
