import { InputError } from '../../../core/errors.ts';
import { createLogger } from '../../../core/log.ts';
import { startController } from '../../../controller/controller.ts';
import { commandContext } from '../../context.ts';
import type { ServeArgs } from '../controller.ts';
import { parseListen } from './flags.ts';

/** Runs the controller until SIGTERM or SIGINT, then closes it cleanly. */
export async function serve(args: ServeArgs): Promise<void> {
  const ctx = commandContext(args);
  const stderr = batchedLines((text) => process.stderr.write(text));
  const log = createLogger({ json: args.json, level: args['log-level'], write: stderr.write });
  const { host, port } = parseListen('--listen', args.listen);
  const advertiseUrl = args['advertise-url'];
  if (advertiseUrl !== undefined && !/^https:\/\/[^/]+\/?$/.test(advertiseUrl)) {
    throw new InputError(`--advertise-url: expected https://HOST:PORT, got ${advertiseUrl}`);
  }
  const controller = await startController({
    dataDir: args['data-dir'],
    host,
    port,
    sans: args.san,
    advertiseUrl: advertiseUrl?.replace(/\/$/, ''),
    log,
  });
  const facts = {
    url: controller.url,
    advertiseUrl: controller.advertiseUrl,
    caCertFile: controller.caCertFile,
    caPin: controller.caPin,
    adminTokenFile: controller.adminTokenFile,
  };
  ctx.print(
    ctx.json
      ? JSON.stringify({ event: 'listening', ...facts })
      : [
          `controller listening on ${facts.url} (node configs point at ${facts.advertiseUrl})`,
          `  CA certificate  ${facts.caCertFile}`,
          `  CA pin          ${facts.caPin}`,
          `  admin token     ${facts.adminTokenFile} (mode 0600)`,
        ].join('\n'),
  );

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('controller.stopping', { signal });
  await controller.close();
  log.info('controller.stopped', { signal });
  stderr.flush();
}

/**
 * Log lines gathered and written once per event-loop turn: stderr to a file or pipe is a
 * synchronous write per call, and the request log has a line per request.
 */
function batchedLines(write: (text: string) => void): { write: (line: string) => void; flush: () => void } {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = `${pending.join('\n')}\n`;
    pending = [];
    write(text);
  };
  return {
    write: (line) => {
      if (pending.length === 0) setImmediate(flush);
      pending.push(line);
    },
    flush,
  };
}
