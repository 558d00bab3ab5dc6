import type { CommandModule } from 'yargs';
import { commandContext, type GlobalArgs } from '../context.ts';

interface CertsCheckArgs extends GlobalArgs {
  report: boolean;
}

interface CertsRenewArgs extends GlobalArgs {
  within: number;
  force: boolean;
}

const checkCommand: CommandModule<GlobalArgs, CertsCheckArgs> = {
  command: 'check',
  describe: "List this control-plane node's kubeadm leaf certificates and their expiry; warn within 30 days",
  builder: (yargs) =>
    yargs.option('report', {
      type: 'boolean',
      default: true,
      describe: 'Also report the expiry dates to the controller (--no-report: do not)',
    }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const [{ readLeafCertificates, expiryWarnings, daysLeft }, { renderTable }, { savedConfig, controllerOf }] = await Promise.all([
      import('../../certs/expiry.ts'),
      import('../../core/table.ts'),
      import('./day-two/saved-controller.ts'),
    ]);
    const now = new Date();
    const expiries = await readLeafCertificates(ctx.host);
    if (args.report && expiries.length > 0) {
      const client = controllerOf(await savedConfig(ctx.host, 'certs check'), ctx.log);
      try {
        await client.reportCertificates({
          checkedAt: now.toISOString(),
          certificates: expiries.map((e) => ({ name: e.name, notAfter: e.notAfter.toISOString() })),
        });
      } finally {
        await client.close();
      }
    }
    for (const warning of expiryWarnings(expiries, now)) ctx.log.warn('certs.expiring', { warning });
    ctx.print(
      ctx.json
        ? JSON.stringify(
            expiries.map((e) => ({ name: e.name, path: e.path, notAfter: e.notAfter.toISOString(), daysLeft: daysLeft(e, now) })),
          )
        : renderTable(
            ['CERTIFICATE', 'EXPIRES', 'DAYS LEFT', 'FILE'],
            expiries.map((e) => [e.name, e.notAfter.toISOString(), daysLeft(e, now), e.path]),
          ),
    );
  },
};

const renewCommand: CommandModule<GlobalArgs, CertsRenewArgs> = {
  command: 'renew',
  describe: 'kubeadm certs renew all, then restart the static pods one at a time (journaled, resumable, reported)',
  builder: (yargs) =>
    yargs
      .option('within', {
        type: 'number',
        default: 90,
        describe: 'Renew only when a certificate expires within this many days (the hourly timer relies on it)',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'Renew now, whatever the expiry dates (still waiting for the claim: one control-plane node at a time)',
      }),
  handler: async (args) => {
    const ctx = commandContext(args);
    const { InputError } = await import('../../core/errors.ts');
    if (!Number.isInteger(args.within) || args.within < 0)
      throw new InputError(`--within: expected a whole number of days, got ${args.within}`);
    const [{ renewCertificates }, { savedConfig, controllerOf }] = await Promise.all([
      import('../../certs/renew.ts'),
      import('./day-two/saved-controller.ts'),
    ]);
    const config = await savedConfig(ctx.host, 'certs renew');
    const client = controllerOf(config, ctx.log);
    try {
      const result = await renewCertificates({
        host: ctx.host,
        log: ctx.log,
        withinDays: args.within,
        force: args.force,
        endpoint: config.controlPlaneEndpoint,
        reporter: client,
      });
      if (!result.renewed) ctx.log.info('certs.renew-skipped', { reason: result.reason });
      ctx.print(
        JSON.stringify({
          renewed: result.renewed,
          ...(result.renewed ? { renewedAt: result.renewedAt } : { reason: result.reason }),
          certificates: result.expiries.map((e) => ({ name: e.name, notAfter: e.notAfter.toISOString() })),
        }),
      );
    } finally {
      await client.close();
    }
  },
};

export const certsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'certs <command>',
  describe: "This control-plane node's kubeadm certificates: check their expiry, renew them",
  builder: (yargs) => yargs.command(checkCommand).command(renewCommand).demandCommand(1, 'Name a certs command: check or renew.'),
  handler: () => {},
};
