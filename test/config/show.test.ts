import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { validConfig } from '../helpers/agent-config.ts';
import { runAgent, scratchDir } from '../helpers/cli.ts';

const scratch = scratchDir('config-show');
afterAll(() => scratch.remove());

it('masks the credentials of a controller URL that carries them', async () => {
  const file = path.join(scratch.dir, 'config.json');
  const config = validConfig();
  writeFileSync(
    file,
    JSON.stringify({ ...config, controller: { ...config.controller, url: 'https://pke:hunter2-secret@127.0.0.1:9443' } }),
  );
  for (const json of [[], ['--json']]) {
    const result = await runAgent(['config', 'show', '--config', file, '--root', scratch.dir, ...json]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('https://***:***@127.0.0.1:9443');
    expect(result.stdout + result.stderr).not.toContain('hunter2');
  }
});
