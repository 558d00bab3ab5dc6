import yargs from 'yargs';
import { ExitCode, InputError, PkeError, errorMessage } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { bootstrapCommand } from './commands/bootstrap.ts';
import { certsCommand } from './commands/certs.ts';
import { etcdCommand, restoreCommand } from './commands/etcd.ts';
import { configCommand } from './commands/config.ts';
import { controllerCommand } from './commands/controller.ts';
import { preflightCommand } from './commands/preflight.ts';
import { statusCommand } from './commands/status.ts';
import { upgradeCommand } from './commands/upgrade.ts';
import { versionCommand, versionText } from './commands/version.ts';
import { vipCommand } from './commands/vip.ts';
import type { GlobalArgs } from './context.ts';

/** Parses argv, runs one command, and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const parser = yargs(argv)
    .scriptName('pke-agent')
    .usage('$0 <command> [options]\n\nBootstraps a vSphere VM into a Kubernetes node, and runs the controller the nodes talk to.')
    .option('json', { type: 'boolean', default: false, global: true, describe: 'Logs and output as JSON lines' })
    .option('root', {
      type: 'string',
      default: process.env.PKE_ROOT ?? '/',
      defaultDescription: '$PKE_ROOT or /',
      global: true,
      describe: 'Treat this directory as the node root for every file the agent reads or writes',
    })
    .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const, global: true })
    .command(versionCommand)
    .command(statusCommand)
    .command(bootstrapCommand)
    .command(configCommand)
    .command(preflightCommand)
    .command(controllerCommand)
    .command(vipCommand)
    .command(certsCommand)
    .command(etcdCommand)
    .command(restoreCommand)
    .command(upgradeCommand)
    .demandCommand(1, 'Name a command; see --help.')
    .strict()
    .version(false)
    .option('version', { type: 'boolean', describe: 'Print the agent version' })
    .help()
    .alias('help', 'h')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilogue('Exit codes: 0 success, 1 operational failure, 2 bad input or config.')
    // Usage mistakes become InputError (exit 2); errors thrown by handlers pass through as they are.
    .fail((message: string | undefined, error: Error | undefined) => {
      throw error ?? new InputError(`${message ?? 'bad usage'} (see pke-agent --help)`);
    });

  try {
    const args = (await parser.parseAsync()) as unknown as GlobalArgs & { version?: boolean; _: unknown[] };
    if (args.version && args._.length === 0) process.stdout.write(`${versionText(args.json)}\n`);
    return ExitCode.ok;
  } catch (error) {
    return reportFailure(error, json);
  }
}

function reportFailure(error: unknown, json: boolean): number {
  const log = createLogger({ json });
  if (error instanceof PkeError) {
    log.error('command.failed', { error: error.message, ...error.context, stderrTail: undefined });
    return error.exitCode;
  }
  log.error('command.failed', { error: errorMessage(error) });
  if (process.env.PKE_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return ExitCode.failure;
}
