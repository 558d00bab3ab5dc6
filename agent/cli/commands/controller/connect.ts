import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError, errorMessage } from '../../../core/errors.ts';
import { ownValue } from '../../../core/records.ts';
import { AdminClient } from '../../../protocol/client.ts';
import { ControllerRequestError } from '../../../protocol/errors.ts';
import type { ConnectionArgs } from '../controller.ts';

/** An admin client from --url and --data-dir (or --ca-file and --token-file). */
export async function adminClient(args: ConnectionArgs): Promise<AdminClient> {
  const caFile = args['ca-file'] ?? path.join(args['data-dir'], 'ca.crt');
  const tokenFile = args['token-file'] ?? path.join(args['data-dir'], 'admin.token');
  const [caCert, token] = await Promise.all([
    readFlagFile(caFile, args['ca-file'] === undefined ? '--data-dir' : '--ca-file'),
    readFlagFile(tokenFile, args['token-file'] === undefined ? '--data-dir' : '--token-file'),
  ]);
  let url: URL;
  try {
    url = new URL(args.url);
  } catch {
    throw new InputError(`--url: "${args.url}" is not a URL`);
  }
  if (url.protocol !== 'https:') throw new InputError(`--url: expected an https:// URL, got ${args.url}`);
  // The CLI is used interactively: a controller that is down should fail in seconds, not minutes.
  return new AdminClient({ url: args.url, caCert, token: token.trim(), retry: { retries: 2, minDelayMs: 200, maxDelayMs: 1000 } });
}

/**
 * A 400 from the controller is bad input too (exit 2); `flags` maps the API field that was
 * wrong to the flag that set it, so the message names what the user typed.
 */
export function asInputError(error: unknown, flags: Record<string, string> = {}): unknown {
  if (!(error instanceof ControllerRequestError) || error.context.status !== 400) return error;
  const flag = error.field === undefined ? undefined : ownValue(flags, error.field);
  return new InputError(flag ? `${flag}: ${error.message}` : error.message, error.context);
}

async function readFlagFile(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new InputError(`${flag}: cannot read ${file}: ${errorMessage(error)}`, { path: file });
  }
}
