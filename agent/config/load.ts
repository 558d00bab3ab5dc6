import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { InputError, PkeError } from '../core/errors.ts';
import { formatIssues } from '../core/schema-issues.ts';
import { SAVED_CONFIG_PATH } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { decodeValue, parseEncoding, GUESTINFO_VALUE_LIMIT } from './encoding.ts';
import { environmentTransport, lookupGuestinfo, vmwareTransports, type GuestinfoTransport } from './guestinfo.ts';
import { agentConfigSchema, type AgentConfig } from './schema.ts';

/** The guestinfo key (after `guestinfo.`) that carries the agent config. */
const CONFIG_KEY = 'pke.config';

export type ConfigSource =
  | { kind: 'file'; path: string }
  | { kind: 'guestinfo'; transport: GuestinfoTransport }
  | { kind: 'saved'; path: string };

export interface LoadedConfig {
  config: AgentConfig;
  source: ConfigSource;
}

export interface LoadOptions {
  host: Host;
  /** `--config FILE`: a path on the machine running the command, not below the node root. */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

export function describeSource(source: ConfigSource): string {
  switch (source.kind) {
    case 'file':
      return `file ${source.path}`;
    case 'guestinfo':
      return `guestinfo.${CONFIG_KEY} via ${source.transport.name}`;
    case 'saved':
      return `saved copy ${source.path}`;
  }
}

/**
 * Finds the agent config; the first source that has one wins: `--config FILE`, the
 * environment transport, guestinfo (vmware-rpctool, then vmtoolsd), then the copy saved by an
 * earlier run. The environment comes before the tools as in cloud-init's VMware datasource,
 * which reads it first whenever `VMX_GUESTINFO` is set. Bad content exits 2 naming the source
 * and the key; nothing is written here.
 */
export async function loadConfig(options: LoadOptions): Promise<LoadedConfig> {
  const { host } = options;
  if (options.file !== undefined) {
    const source: ConfigSource = { kind: 'file', path: options.file };
    let text: string;
    try {
      text = await readFile(options.file, 'utf8');
    } catch (error) {
      throw new InputError(
        `--config ${options.file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
    return { config: parseConfig(describeSource(source), text), source };
  }

  const lookup = await lookupGuestinfo([environmentTransport(options.env ?? process.env), ...vmwareTransports(host)], CONFIG_KEY);
  if (lookup.found) {
    const source: ConfigSource = { kind: 'guestinfo', transport: lookup.transport };
    const text = decodeValue(`guestinfo.${CONFIG_KEY}`, lookup.value, parseEncoding(lookup.encoding));
    return { config: parseConfig(describeSource(source), text), source };
  }
  const tried = [...lookup.notes];

  const saved = await host.readText(SAVED_CONFIG_PATH);
  if (saved !== undefined) {
    const source: ConfigSource = { kind: 'saved', path: host.file(SAVED_CONFIG_PATH) };
    return { config: parseConfig(describeSource(source), saved), source };
  }
  tried.push(`no saved copy at ${SAVED_CONFIG_PATH}`);

  const message = `no agent config found (pass --config FILE or set guestinfo.${CONFIG_KEY}): ${tried.join('; ')}`;
  throw lookup.failed ? new PkeError(message) : new InputError(message);
}

/** Parses YAML or JSON text and validates it; every problem is reported as `source: key.path: what is wrong`. */
export function parseConfig(sourceName: string, text: string): AgentConfig {
  if (Buffer.byteLength(text) > 4 * GUESTINFO_VALUE_LIMIT) {
    throw new InputError(
      `${sourceName}: config is ${Buffer.byteLength(text)} bytes; a config larger than ${4 * GUESTINFO_VALUE_LIMIT} bytes is refused`,
    );
  }
  let document: unknown;
  try {
    document = YAML.parse(text, { uniqueKeys: true, prettyErrors: true, maxAliasCount: 10 });
  } catch (error) {
    throw new InputError(`${sourceName}: not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  if (document === null || document === undefined) throw new InputError(`${sourceName}: the config is empty`);
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new InputError(
      `${sourceName}: the config must be a mapping of keys, not a ${Array.isArray(document) ? 'list' : typeof document}`,
    );
  }
  const parsed = agentConfigSchema.safeParse(document);
  if (!parsed.success) throw new InputError(`${sourceName}: ${formatIssues(parsed.error.issues, document)}`);
  return parsed.data;
}

/** Keeps the validated config for reruns (guestinfo is redacted after the first read). */
export async function saveConfig(host: Host, config: AgentConfig): Promise<void> {
  await host.writeFile(SAVED_CONFIG_PATH, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Removes the config from guestinfo as cloud-init does for its own keys: a key cannot be
 * deleted, so the value becomes `---` (absent) and the encoding a blank.
 */
export async function redactGuestinfo(source: ConfigSource): Promise<boolean> {
  if (source.kind !== 'guestinfo') return false;
  await source.transport.set(CONFIG_KEY, '---');
  await source.transport.set(`${CONFIG_KEY}.encoding`, ' ');
  return true;
}
