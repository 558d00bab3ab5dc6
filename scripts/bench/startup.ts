// Start-up time of the single executable against the bare Node it embeds:
// `dist/pke-agent version` versus `node -e 0`, alternating runs, medians compared.
//   node scripts/bench/startup.ts [RUNS]
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { BenchSection } from '../bench.ts';
import { ensureBuilt } from '../ensure-built.ts';

const repo = path.resolve(import.meta.dirname, '../..');

export interface StartupResult {
  runs: number;
  executableBytes: number;
  agentMedianMs: number;
  nodeMedianMs: number;
  ratio: number;
}

function timeOnce(command: string, args: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { stdio: 'ignore' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function measureStartup(runs = 40): StartupResult {
  const executable = path.join(repo, 'dist/pke-agent');
  if (!existsSync(executable)) throw new Error('dist/pke-agent is missing: run `npm run build` first');
  const agent: number[] = [];
  const node: number[] = [];
  // Warm the page cache for both binaries before measuring.
  timeOnce(executable, ['version']);
  timeOnce(process.execPath, ['-e', '0']);
  for (let i = 0; i < runs; i++) {
    agent.push(timeOnce(executable, ['version']));
    node.push(timeOnce(process.execPath, ['-e', '0']));
  }
  const agentMedianMs = median(agent);
  const nodeMedianMs = median(node);
  return { runs, executableBytes: statSync(executable).size, agentMedianMs, nodeMedianMs, ratio: agentMedianMs / nodeMedianMs };
}

/** The bench section: start-up of `pke-agent version` against `node -e 0`. */
export async function benchStartup(): Promise<BenchSection> {
  await ensureBuilt();
  const result = measureStartup();
  return {
    name: 'startup',
    summary: `dist/pke-agent version vs node -e 0 (Node ${process.versions.node}), medians of ${result.runs} alternating runs`,
    metrics: [
      { name: 'executable size', value: result.executableBytes / 1024 / 1024, unit: 'MB' },
      { name: 'pke-agent version', value: result.agentMedianMs, unit: 'ms' },
      { name: 'node -e 0', value: result.nodeMedianMs, unit: 'ms' },
      { name: 'ratio', value: result.ratio, unit: 'x', max: 1.2 },
    ],
  };
}

if (import.meta.main) {
  const result = measureStartup(Number(process.argv[2] ?? 40));
  console.log(`runs per command      ${result.runs}`);
  console.log(`executable size       ${(result.executableBytes / 1024 / 1024).toFixed(1)} MiB`);
  console.log(`pke-agent version     ${result.agentMedianMs.toFixed(1)} ms (median)`);
  console.log(`node -e 0             ${result.nodeMedianMs.toFixed(1)} ms (median, Node ${process.versions.node})`);
  console.log(`ratio                 ${result.ratio.toFixed(2)}x (target at most 1.2x)`);
}
