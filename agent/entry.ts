import { versionText } from './cli/commands/version.ts';

/**
 * The process entry, shared by `node agent/main.ts` and the single executable: the most
 * frequent probe, `version`, answers before the CLI and its libraries are even loaded.
 */
export function start(loadCli: () => Promise<{ main: (argv: string[]) => Promise<number> }>): void {
  const argv = process.argv.slice(2);
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === 'version')) {
    process.stdout.write(`${versionText(false)}\n`);
    return;
  }
  void loadCli()
    .then(({ main }) => main(argv))
    .then((code) => {
      process.exitCode = code;
    });
}
