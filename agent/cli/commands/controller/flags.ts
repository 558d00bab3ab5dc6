import { isIP } from 'node:net';
import { InputError } from '../../../core/errors.ts';

/** Flag values that need more than yargs' types. Every error names the flag and exits 2. */

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `15m`, `24h`, `7d`, or plain seconds. */
export function parseDuration(flag: string, value: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!match) throw new InputError(`${flag}: "${value}" is not a duration; use e.g. 90s, 15m, 24h or 7d`);
  const seconds = Number(match[1]) * (UNIT_SECONDS[match[2] || 's'] ?? 1);
  if (seconds <= 0) throw new InputError(`${flag}: the duration must be positive`);
  return seconds;
}

/** `HOST:PORT` or `[IPv6]:PORT`. */
export function parseListen(flag: string, value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!match || !host || !Number.isInteger(port) || port > 65535) {
    throw new InputError(`${flag}: "${value}" is not HOST:PORT (for example 0.0.0.0:9443 or [::]:9443)`);
  }
  if (match[1] !== undefined && isIP(host) !== 6) throw new InputError(`${flag}: "${host}" is not an IPv6 address`);
  return { host, port };
}
