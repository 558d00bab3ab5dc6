import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.ts';

/**
 * The layer rule of docs/ARCHITECTURE.md ("Layers"), checked against every import under agent/
 * (type-only and dynamic imports included). The table there is the one statement of the layers.
 */

const AGENT = path.join(REPO, 'agent');

interface Unit {
  /** A directory (`kube`) or a file (`addons/catalog.ts`) below agent/. */
  name: string;
  layer: number;
}

function layerTable(): Unit[] {
  const doc = readFileSync(path.join(REPO, 'docs/ARCHITECTURE.md'), 'utf8');
  const section = doc.split(/^## Layers$/m)[1]?.split(/^## /m)[0] ?? '';
  const units: Unit[] = [];
  for (const [, layer, names] of section.matchAll(/^\| (\d+) \| ([^|]+) \|/gm)) {
    for (const [, name] of (names ?? '').matchAll(/`([^`]+)`/g)) units.push({ name: name ?? '', layer: Number(layer) });
  }
  return units;
}

/** The unit a file below agent/ belongs to: the longest name that is the file or a directory above it. */
function unitOf(units: Unit[], file: string): Unit | undefined {
  return units.filter((unit) => file === unit.name || file.startsWith(`${unit.name}/`)).sort((a, b) => b.name.length - a.name.length)[0];
}

/** Relative imports of a module: static, `export ... from` and `import()`. */
function importsOf(text: string): string[] {
  const found = [
    ...text.matchAll(/^\s*(?:import|export)\s[^'";]*?from\s+'(\.{1,2}\/[^']+)'/gm),
    ...text.matchAll(/^\s*import\s+'(\.{1,2}\/[^']+)'/gm),
    ...text.matchAll(/\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g),
  ];
  return found.map((match) => match[1] ?? '');
}

function agentModules(): string[] {
  return readdirSync(AGENT, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => file.split(path.sep).join('/'));
}

/** Every import that breaks the rule, as `from -> to (why)`. */
function layerViolations(units: Unit[], modules: string[], read: (file: string) => string): string[] {
  const problems: string[] = [];
  for (const file of modules) {
    const from = unitOf(units, file);
    if (!from) {
      problems.push(`agent/${file} is in no layer: add its directory to the table in docs/ARCHITECTURE.md`);
      continue;
    }
    for (const specifier of importsOf(read(file))) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      if (target.startsWith('../')) continue; // outside agent/ (the cloud-init templates)
      const to = unitOf(units, target);
      if (!to || to === from) continue;
      if (to.layer > from.layer) problems.push(`agent/${file} -> agent/${target} (layer ${from.layer} imports layer ${to.layer})`);
      else if (to.layer === from.layer)
        problems.push(`agent/${file} -> agent/${target} (${from.name} and ${to.name} share layer ${from.layer})`);
    }
  }
  return problems;
}

describe('layers', () => {
  const units = layerTable();

  it('are stated in docs/ARCHITECTURE.md', () => {
    expect(units.map((unit) => unit.name)).toEqual(
      expect.arrayContaining(['core', 'config', 'protocol', 'kube', 'vip', 'phases', 'bootstrap', 'cli']),
    );
  });

  it('hold: no module imports a higher layer or another directory of its own layer', () => {
    expect(layerViolations(units, agentModules(), (file) => readFileSync(path.join(AGENT, file), 'utf8'))).toEqual([]);
  });

  it('catch an import of a higher layer, a type-only or dynamic one too', () => {
    const modules: Record<string, string> = {
      'kube/a.ts': "import type { Phase } from '../phases/phase.ts';\n",
      'vip/b.ts': "const { syncVip } = await import('../bootstrap/bootstrap.ts');\n",
      'kube/c.ts': "import {\n  x,\n  y,\n} from '../vip/keepalived.ts';\nimport { z } from './paths.ts';\n",
      'phases/d.ts': "import { parseConfig } from '../config/load.ts';\n",
    };
    expect(layerViolations(units, Object.keys(modules), (file) => modules[file] ?? '')).toEqual([
      'agent/kube/a.ts -> agent/phases/phase.ts (layer 6 imports layer 9)',
      'agent/vip/b.ts -> agent/bootstrap/bootstrap.ts (layer 6 imports layer 10)',
      'agent/kube/c.ts -> agent/vip/keepalived.ts (kube and vip share layer 6)',
    ]);
  });
});
