import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.ts';
import { run, systemCommand, titled } from './support.ts';

const SCRIPTS = path.join(REPO, 'packer/scripts');
const CLOUD_INIT = path.join(REPO, 'cloud-init/image');

const shellcheck = systemCommand('shellcheck');
const shellcheckMissing = shellcheck
  ? undefined
  : 'shellcheck not installed (Debian package shellcheck; scripts/setup.sh installs it as root)';

describe.skipIf(shellcheckMissing)(titled('provisioning scripts', shellcheckMissing), () => {
  const scripts = readdirSync(SCRIPTS).filter((f) => f.endsWith('.sh'));

  it('are shellcheck-clean, the stand-in package builder too', async () => {
    expect(scripts).toEqual(expect.arrayContaining(['provision.sh', 'lib.sh', '99-selftest.sh']));
    const result = await run(
      shellcheck!,
      ['-x', '-P', SCRIPTS, ...scripts.map((s) => path.join(SCRIPTS, s)), path.join(REPO, 'test/image/standin-debs/build-standin-debs.sh')],
      { cwd: SCRIPTS },
    );
    expect(result.exitCode, result.all).toBe(0);
  });

  it('all start with set -euo pipefail (lib.sh, which is sourced, excepted)', () => {
    for (const script of scripts.filter((s) => s !== 'lib.sh')) {
      const text = readFileSync(path.join(SCRIPTS, script), 'utf8');
      expect(text, script).toMatch(/^#!\/usr\/bin\/env bash\n(#.*\n)*set -euo pipefail$/m);
    }
  });

  it('end with the image self-test, after sysprep', () => {
    const steps = scripts.filter((s) => /^\d\d-/.test(s)).sort();
    expect(steps.at(-1)).toBe('99-selftest.sh');
    expect(steps.at(-2)).toBe('95-sysprep.sh');
    expect(readFileSync(path.join(SCRIPTS, '99-selftest.sh'), 'utf8')).toMatch(/^\/usr\/local\/bin\/pke-agent preflight --image$/m);
  });
});

const cloudInit = systemCommand('cloud-init');
const cloudInitMissing = cloudInit ? undefined : 'cloud-init not installed (scripts/setup.sh installs it as root)';

describe.skipIf(cloudInitMissing)(titled('cloud-init image config', cloudInitMissing), () => {
  it('passes `cloud-init schema` and pins the VMware datasource', async () => {
    const files = readdirSync(CLOUD_INIT).filter((f) => f.endsWith('.cfg'));
    expect(files).toContain('99-pke-datasource.cfg');
    for (const file of files) {
      const result = await run(cloudInit!, ['schema', '--config-file', path.join(CLOUD_INIT, file)]);
      expect(result.exitCode, `${file}: ${result.all}`).toBe(0);
      expect(result.all).toContain(`Valid cloud-config: ${path.join(CLOUD_INIT, file)}`);
    }
    expect(readFileSync(path.join(CLOUD_INIT, '99-pke-datasource.cfg'), 'utf8')).toMatch(/^datasource_list: \[ VMware, None \]$/m);
    expect(readFileSync(path.join(CLOUD_INIT, '99-pke-node.cfg'), 'utf8')).toMatch(/^preserve_hostname: false$/m);
  });
});
