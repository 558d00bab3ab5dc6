import { afterAll, describe, expect, it } from 'vitest';
import { runAgent, scratchDir } from '../helpers/cli.ts';

/** `pke-agent restore`: the restore itself and `--rejoin` are tested on the real tier (test/e2e/*-real.test.ts). */
describe('pke-agent restore arguments', () => {
  const root = scratchDir('restore-cli');
  afterAll(() => root.remove());

  it('wants either --snapshot FILE or --rejoin, not both and not neither', async () => {
    for (const args of [[], ['--snapshot', '/root/x.db', '--rejoin']]) {
      const result = await runAgent(['restore', ...args], { env: { PKE_ROOT: root.dir } });
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toContain('Give either --snapshot FILE (the restore) or --rejoin');
    }
  });

  it('refuses --rejoin on a node that was never bootstrapped, before touching anything', async () => {
    const result = await runAgent(['restore', '--rejoin'], { env: { PKE_ROOT: root.dir } });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('restore: no saved config at /var/lib/pke-agent/config.json');
  });
});
