import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

interface UpgradeArgs extends GlobalArgs {
  to?: string;
  phase?: string;
  redo: boolean;
}

export const upgradeCommand: CommandModule<GlobalArgs, UpgradeArgs> = {
  command: 'upgrade',
  describe:
    "Take this node's part in the cluster's Kubernetes upgrade: check, wait for its turn, drain, kubeadm upgrade, kubelet, uncordon (safe to rerun)",
  builder: (yargs) =>
    yargs
      .option('to', { type: 'string', describe: 'The version expected; refused if the cluster is upgrading to another' })
      .option('phase', { type: 'string', describe: 'Run only this upgrade phase' })
      .option('redo', { type: 'boolean', default: false, describe: 'With --phase: run it even if it is done' }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ upgradeNode }, { createUpgradeClients }] = await Promise.all([
      import('../../bootstrap/upgrade.ts'),
      import('../../protocol/upgrade-client.ts'),
    ]);
    await upgradeNode({
      host: ctx.host,
      log: ctx.log,
      to: args.to,
      only: args.phase,
      redo: args.redo,
      connect: (config, signal) => createUpgradeClients(config, { log: ctx.log, signal }),
    });
  },
};
