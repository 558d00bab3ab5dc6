import { ConnectionPool, request, requestErrorDetail } from './https.ts';

export interface ProbeResult {
  ok: boolean;
  /** HTTP status, or undefined when no answer came. */
  status?: number;
  /** The body's first line, or the connection error. */
  detail: string;
  ms: number;
}

/**
 * One HTTPS GET with a short timeout, verifying the server against `ca` when given (the cluster
 * CA for the API server). Never throws: an unreachable endpoint is an answer too.
 */
export async function probeHttps(
  url: string,
  options: { ca?: string; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<ProbeResult> {
  const timeout = options.timeoutMs ?? 2000;
  const pool = new ConnectionPool({ ca: options.ca, rejectUnauthorized: options.ca !== undefined });
  const started = performance.now();
  try {
    const response = await request(url, { pool, headers: options.headers, timeoutMs: timeout });
    const body = response.text.trim().split('\n')[0] ?? '';
    return {
      ok: response.statusCode === 200,
      status: response.statusCode,
      detail: body.slice(0, 200),
      ms: Math.round(performance.now() - started),
    };
  } catch (error) {
    return { ok: false, detail: requestErrorDetail(error), ms: Math.round(performance.now() - started) };
  } finally {
    await pool.close();
  }
}
