import { InputError } from '../../../core/errors.ts';
import { createLogger } from '../../../core/log.ts';
import { startController } from '../../../controller/controller.ts';
import type { EtcdOptions } from '../../../controller/store/etcd-backend.ts';
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
  const peerUrls = args['peer-url'].map((url) => {
    if (!/^https:\/\/[^/]+\/?$/.test(url)) throw new InputError(`--peer-url: expected https://HOST:PORT, got ${url}`);
    return url.replace(/\/$/, '');
  });
  const etcd = etcdOptions(args);
  if (!etcd && peerUrls.length > 0) throw new InputError('--peer-url: replicas share their state through etcd; give --etcd too');
  const controller = await startController({
    dataDir: args['data-dir'],
    host,
    port,
    sans: args.san,
    advertiseUrl: advertiseUrl?.replace(/\/$/, ''),
    peerUrls,
    etcd,
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

function etcdOptions(args: ServeArgs): EtcdOptions | undefined {
  if (args.etcd === undefined) {
    const stray = (['etcd-ca', 'etcd-cert', 'etcd-key', 'etcd-secret-key', 'etcd-prefix'] as const).find(
      (flag) => args[flag] !== undefined,
    );
    if (stray) throw new InputError(`--${stray} goes with --etcd`);
    return undefined;
  }
  const secretKeyFile = args['etcd-secret-key'];
  if (secretKeyFile === undefined) throw new InputError('--etcd-secret-key: the etcd backend seals secrets with a key file; give its path');
  return {
    urls: args.etcd
      .split(',')
      .map((url) => url.trim())
      .filter(Boolean),
    caFile: args['etcd-ca'],
    certFile: args['etcd-cert'],
    keyFile: args['etcd-key'],
    secretKeyFile,
    prefix: args['etcd-prefix'],
  };
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
