import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toYaml, validConfig } from '../helpers/agent-config.ts';
import { ensureBuilt } from '../../scripts/ensure-built.ts';
import { scratchDir } from '../helpers/cli.ts';

/** The built single executable, run with a PATH that holds no node: it must carry its own. */
let executable: string;
let scratch: { dir: string; remove: () => void };
let NO_NODE_PATH: string;
/** What a minimal VM template has on PATH besides the agent; node is not among them. */
const BASE_TOOLS = ['sh', 'cat', 'grep', 'sed', 'awk', 'ls', 'ip', 'uname', 'hostname', 'head', 'tail', 'tr', 'cut', 'sort', 'ps'];

beforeAll(async () => {
  executable = await ensureBuilt();
  scratch = scratchDir('sea');
  const bin = path.join(scratch.dir, 'bin');
  mkdirSync(bin);
  for (const tool of BASE_TOOLS) {
    const found = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((dir) => path.join(dir, tool)).find((file) => existsSync(file));
    if (found) symlinkSync(found, path.join(bin, tool));
  }
  NO_NODE_PATH = bin;
}, 300_000);
afterAll(() => scratch?.remove());

function run(args: string[]) {
  return execa(executable, args, { env: { PATH: NO_NODE_PATH, HOME: scratch.dir }, extendEnv: false, reject: false });
}

describe('dist/pke-agent', () => {
  it('has no node on the PATH it is tested with', async () => {
    const which = await execa('/bin/sh', ['-c', 'command -v node || echo none'], { env: { PATH: NO_NODE_PATH }, extendEnv: false });
    expect(which.stdout.trim()).toBe('none');
  });

  it('prints its version with `version` and `--version`, embedding Node 24', async () => {
    for (const args of [['version'], ['--version']]) {
      const result = await run(args);
      expect(result.exitCode).toBe(0);
      expect(result.stdout.trim()).toMatch(/^pke-agent \d+\.\d+\.\d+ \(commit ([0-9a-f]+|unknown), node 24\.\d+\.\d+\)$/);
    }
    const json = await run(['version', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ node: expect.stringMatching(/^24\./) });
  });

  it('shows help for every command', async () => {
    for (const command of [[], ['bootstrap'], ['status'], ['preflight'], ['controller'], ['config', 'show']]) {
      const result = await run([...command, '--help']);
      expect(result.exitCode, `${command.join(' ')} --help`).toBe(0);
      expect(result.stdout).toContain('pke-agent');
      expect(result.stdout).toContain('--json');
    }
    const top = await run(['--help']);
    for (const command of ['bootstrap', 'status', 'preflight', 'controller', 'version'])
      expect(top.stdout).toContain(`pke-agent ${command}`);
    expect(top.stdout).toContain('Exit codes: 0 success, 1 operational failure, 2 bad input or config.');
  });

  it('exits 2 on an unknown command or flag', async () => {
    expect((await run(['frobnicate'])).exitCode).toBe(2);
    expect((await run(['status', '--no-such-flag'])).exitCode).toBe(2);
  });

  it('answers status --json on a node that was never bootstrapped', async () => {
    const root = path.join(scratch.dir, 'fresh');
    mkdirSync(root);
    const result = await run(['status', '--json', '--root', root]);
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.bootstrapped).toBe(false);
    expect(report.phases.every((p: { state: string }) => p.state === 'pending')).toBe(true);
    expect(report.configProblem).toMatch(/no saved config/);
    expect(report.facts.cpus).toBeGreaterThan(0);
  });

  it('reads a config file and rejects a bad one with exit 2', async () => {
    const good = path.join(scratch.dir, 'good.yaml');
    writeFileSync(good, toYaml(validConfig()));
    expect((await run(['config', 'show', '--config', good])).exitCode).toBe(0);
    const bad = path.join(scratch.dir, 'bad.yaml');
    writeFileSync(bad, toYaml({ ...validConfig(), pool: 'Bad_Pool' }));
    const result = await run(['config', 'show', '--config', bad]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('pool: expected a lower-case DNS label');
  });
});
