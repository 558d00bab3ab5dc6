// Runs the benchmark sections, writes bench/results.json and prints a short table.
//   node scripts/bench.ts [SECTION...]      (npm run bench)
// Exits 1 when a measured value misses its target.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { renderTable } from '../agent/core/table.ts';
import { benchController } from './bench/controller.ts';
import { benchLab } from './bench/lab.ts';
import { benchRealLab } from './bench/real-lab.ts';
import { benchRealUpgrade } from './bench/real-upgrade.ts';
import { benchStartup } from './bench/startup.ts';
import { benchVsphere } from './bench/vsphere.ts';

export interface BenchMetric {
  name: string;
  value: number;
  unit: 'ms' | 's' | 'MB' | 'count' | 'x';
  /** The value must not exceed this. */
  max?: number;
}

export interface BenchSection {
  name: string;
  /** One sentence: what was measured, on what. */
  summary: string;
  metrics: BenchMetric[];
  /** Anything else worth keeping in results.json (per-endpoint tables, settings). */
  details?: Record<string, unknown>;
}

/** Every section this runner knows, by name. Add a section here. */
const SECTIONS: Record<string, () => Promise<BenchSection>> = {
  startup: benchStartup,
  controller: benchController,
  lab: benchLab,
  'real-lab': benchRealLab,
  'real-upgrade': benchRealUpgrade,
  vsphere: benchVsphere,
};

const repo = path.resolve(import.meta.dirname, '..');

async function main(names: string[]): Promise<number> {
  const unknown = names.filter((n) => !(n in SECTIONS));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown section ${unknown.join(', ')}; known: ${Object.keys(SECTIONS).join(', ')}\n`);
    return 2;
  }
  const chosen = names.length > 0 ? names : Object.keys(SECTIONS);
  const sections: BenchSection[] = [];
  for (const name of chosen) {
    process.stderr.write(`bench: ${name} ...\n`);
    const run = SECTIONS[name];
    if (run) sections.push(await run());
  }
  const file = path.join(repo, 'bench/results.json');
  // Sections not run this time keep their last results.
  const previous = existsSync(file) ? ((JSON.parse(readFileSync(file, 'utf8')) as { sections?: BenchSection[] }).sections ?? []) : [];
  const kept = previous.filter((s) => !chosen.includes(s.name));
  const results = {
    generatedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadAverage: loadavg(), node: process.versions.node },
    sections: [...kept, ...sections].sort((a, b) => Object.keys(SECTIONS).indexOf(a.name) - Object.keys(SECTIONS).indexOf(b.name)),
  };
  mkdirSync(path.join(repo, 'bench'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${table(sections)}\n\nwritten: bench/results.json\n`);
  return sections.some((s) => s.metrics.some(missed)) ? 1 : 0;
}

function missed(metric: BenchMetric): boolean {
  return metric.max !== undefined && metric.value > metric.max;
}

function table(sections: BenchSection[]): string {
  const rows = sections.flatMap((section) =>
    section.metrics.map((m) => [
      section.name,
      m.name,
      `${Number.isInteger(m.value) ? m.value : m.value.toFixed(m.value < 10 ? 2 : 1)} ${m.unit}`,
      m.max === undefined ? '' : `<= ${m.max} ${m.unit}`,
      m.max === undefined ? '' : missed(m) ? 'MISSED' : 'ok',
    ]),
  );
  return renderTable(['SECTION', 'METRIC', 'VALUE', 'TARGET', ''], rows);
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
