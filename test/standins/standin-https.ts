// STAND-IN support, for tests only: one HTTPS request as kubeadm's and kubectl's stand-ins make
// them against the API server stand-in (client certificate or bearer token, the cluster CA).

export interface HttpsOptions {
  method?: string;
  /** PEM of the CA to trust; without it the server is not verified (kubeadm's first discovery call). */
  ca?: string;
  cert?: string;
  key?: string;
  bearer?: string;
  body?: unknown;
  timeoutMs?: number;
  /** Verify the chain but not the host name (the stand-in reaches its own API through 127.0.0.1). */
  anyHostName?: boolean;
}

export interface HttpsAnswer {
  status: number;
  body: string;
}

export async function httpsRequest(url: string, options: HttpsOptions = {}): Promise<HttpsAnswer> {
  // node:https (tls and http with it) loads with the first request: it costs a stand-in run about
  // as much CPU as Node's own start-up, and the commands that make no request need none of it.
  const https = await import('node:https');
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
  return new Promise((resolve, reject) => {
    const request = https.request(
      url,
      {
        method: options.method ?? 'GET',
        headers,
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        rejectUnauthorized: options.ca !== undefined,
        ...(options.anyHostName ? { checkServerIdentity: () => undefined } : {}),
        timeout: options.timeoutMs ?? 5_000,
        agent: false,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`i/o timeout after ${options.timeoutMs ?? 5_000} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}

/** Go's way of saying a dial failed, as kubeadm and kubectl print it. */
export function dialError(url: string, error: unknown): string {
  const { host } = new URL(url);
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return `dial tcp ${host}: connect: connection refused`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `dial tcp ${host}: connect: no route to host`;
  return (error as Error).message;
}
