import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

/**
 * Prometheus' own text-format parser, through its prom2json tool (built from its Go module by
 * scripts/setup.sh into the tools cache, the same path computed here).
 */

const VERSION = 'v1.4.2';
const CACHE =
  process.env.PKE_TOOLS_CACHE ?? (process.getuid?.() === 0 ? '/var/cache/pke-agent/tools' : path.join(homedir(), '.cache/pke-agent/tools'));
const BINARY = path.join(CACHE, `prom2json-${VERSION}`, 'prom2json');

/** Why the tool cannot run here, or undefined when it can. */
export function prom2jsonSkipReason(): string | undefined {
  return existsSync(BINARY) ? undefined : `${BINARY} is missing (scripts/setup.sh builds it from github.com/prometheus/prom2json)`;
}

export interface PromSample {
  labels?: Record<string, string>;
  value?: string;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

export interface PromFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: PromSample[];
}

/** Parses a scrape; fails with the parser's message when the text is not valid exposition format. */
export async function parseMetrics(text: string): Promise<PromFamily[]> {
  const result = await execa(BINARY, [], { input: text, reject: false });
  if (result.exitCode !== 0) throw new Error(`prom2json refused the metrics: ${String(result.stderr).trim()}`);
  return JSON.parse(String(result.stdout)) as PromFamily[];
}
