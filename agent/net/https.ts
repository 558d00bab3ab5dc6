import { createReadStream, statSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import type { SecureContext } from 'node:tls';

/**
 * HTTPS requests on node:https (built in: nothing to load at start). A pool keeps connections
 * to one server alive and holds what TLS trusts and presents; a request reads the whole answer.
 */

export interface PoolOptions {
  /** The only CAs trusted; or a ready context with them. */
  ca?: string;
  secureContext?: SecureContext;
  /** A client certificate and key to present. */
  cert?: string;
  key?: string;
  /** False only to probe a server whose CA is not known (its answer is just a status). */
  rejectUnauthorized?: boolean;
  /** At most this many connections at once (default: no limit). */
  connections?: number;
}

export class ConnectionPool {
  readonly agent: Agent;

  constructor(options: PoolOptions) {
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: options.connections ?? Infinity,
      ca: options.ca,
      secureContext: options.secureContext,
      cert: options.cert,
      key: options.key,
      rejectUnauthorized: options.rejectUnauthorized ?? true,
    });
  }

  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }
}

export interface RequestOptions {
  pool: ConnectionPool;
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  headers?: Record<string, string>;
  body?: string;
  /** Instead of `body`: a file streamed as the body (an etcd snapshot may be gigabytes). */
  bodyFile?: string;
  /** The whole exchange, from connecting to the answer's last byte. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface Answer {
  statusCode: number;
  text: string;
}

/** One request; rejects on a connection or TLS error, the timeout, or `signal`. */
export function request(url: string, options: RequestOptions): Promise<Answer> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const length =
    options.bodyFile !== undefined
      ? statSync(options.bodyFile).size
      : options.body === undefined
        ? undefined
        : Buffer.byteLength(options.body);
  const headers = length === undefined ? options.headers : { ...options.headers, 'content-length': String(length) };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: options.method ?? 'GET', headers, agent: options.pool.agent, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('end', () => {
        resolve({ statusCode: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        // A server that answered before it had the whole body (a refused upload) needs no more of it.
        if (!req.writableFinished) req.destroy();
      });
      res.once('error', reject);
    });
    req.once('error', (error) => reject(timeout.aborted ? new Error(`no answer within ${options.timeoutMs} ms`, { cause: error }) : error));
    if (options.bodyFile === undefined) req.end(options.body);
    else {
      const file = createReadStream(options.bodyFile);
      file.once('error', (error) => req.destroy(error));
      file.pipe(req);
    }
  });
}

/** What went wrong with a request that got no answer: the system's code (ECONNREFUSED, ...) when there is one. */
export function requestErrorDetail(error: unknown): string {
  return (error as { code?: string }).code ?? (error as Error).message;
}
