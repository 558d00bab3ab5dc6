import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

interface BootstrapArgs extends GlobalArgs {
  config?: string;
  phase?: string;
  redo: boolean;
  'keep-guestinfo': boolean;
  'list-phases': boolean;
}

export const bootstrapCommand: CommandModule<GlobalArgs, BootstrapArgs> = {
  command: 'bootstrap',
  describe: 'Turn this VM into a cluster node (run once by cloud-init; safe to rerun: finished phases are skipped)',
  builder: (yargs) =>
    yargs
      .option('config', { type: 'string', describe: 'Read the config from this YAML or JSON file instead of guestinfo' })
      .option('phase', { type: 'string', describe: 'Run only this phase (see --list-phases)' })
      .option('redo', {
        type: 'boolean',
        default: false,
        describe: 'With --phase: run it even if it is done (e.g. `--phase vip --redo` picks up new control-plane peers)',
      })
      .option('keep-guestinfo', { type: 'boolean', default: false, describe: 'Do not redact guestinfo.pke.config after reading it' })
      .option('list-phases', { type: 'boolean', default: false, describe: 'List the phases in order and exit' }),
  handler: async (args) => {
    const ctx = commandContext(args);
    if (args['list-phases']) {
      const [{ PHASES }, { renderTable }] = await Promise.all([import('../../phases/index.ts'), import('../../core/table.ts')]);
      ctx.print(
        ctx.json
          ? JSON.stringify(PHASES.map((p) => ({ name: p.name, summary: p.summary, needs: p.needs })))
          : renderTable(
              ['PHASE', 'NEEDS', 'WHAT IT DOES'],
              PHASES.map((p) => [p.name, p.needs.join(',') || '-', p.summary]),
            ),
      );
      return;
    }
    const [{ bootstrap }, { createNodeClient }] = await Promise.all([
      import('../../bootstrap/bootstrap.ts'),
      import('../../protocol/client.ts'),
    ]);
    await bootstrap({
      host: ctx.host,
      log: ctx.log,
      file: args.config,
      only: args.phase,
      redo: args.redo,
      keepGuestinfo: args['keep-guestinfo'],
      connect: (config, signal) => createNodeClient(config, { log: ctx.log, signal }),
    });
  },
};
