import { createLogger, type Logger, type LogLevel } from '../core/log.ts';
import { Host } from '../host/host.ts';

/** Options every command accepts, parsed once here and handed down as a typed value. */
export interface GlobalArgs {
  json: boolean;
  root: string;
  'log-level': LogLevel;
}

export interface CommandContext {
  json: boolean;
  log: Logger;
  host: Host;
  /** Command output (tables, JSON documents); logs go to stderr. */
  print: (text: string) => void;
}

export function commandContext(args: GlobalArgs): CommandContext {
  const log = createLogger({ json: args.json, level: args['log-level'] });
  return {
    json: args.json,
    log,
    host: new Host({ root: args.root, log }),
    print: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}
