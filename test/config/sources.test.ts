import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fakeNodeToken, gzipBase64, toYaml, validConfig } from '../helpers/agent-config.ts';
import { runAgent, scratchDir, searchPath, VMWARE_STANDINS } from '../helpers/cli.ts';

/**
 * Where `pke-agent` finds its config, run as a process against the stand-in VMware tools
 * (and, where it says so, the real open-vm-tools binaries, which answer "not on VMware" here).
 */
let scratch: { dir: string; remove: () => void };
let guestinfo: string;
let root: string;

beforeEach(() => {
  scratch = scratchDir('config');
  guestinfo = path.join(scratch.dir, 'guestinfo');
  root = path.join(scratch.dir, 'root');
  mkdirSync(path.join(guestinfo, 'keys'), { recursive: true });
  mkdirSync(root);
});
afterEach(() => scratch.remove());

function setKey(key: string, value: string) {
  writeFileSync(path.join(guestinfo, 'keys', key), value);
}
function key(key: string): string | undefined {
  const file = path.join(guestinfo, 'keys', key);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}
function calls(): string[] {
  const file = path.join(guestinfo, 'calls.log');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}
function show(env: Record<string, string> = {}, extra: string[] = []) {
  return runAgent(['config', 'show', '--json', '--root', root, ...extra], {
    path: searchPath([VMWARE_STANDINS]),
    env: { PKE_GUESTINFO_DIR: guestinfo, ...env },
  });
}
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String);
}

describe('guestinfo through vmware-rpctool', () => {
  const yaml = toYaml(validConfig());
  const encodings: [string | undefined, (text: string) => string][] = [
    [undefined, (t) => t],
    ['base64', (t) => Buffer.from(t).toString('base64')],
    ['b64', (t) => Buffer.from(t).toString('base64')],
    ['gzip+base64', gzipBase64],
    ['gz+b64', gzipBase64],
    ['GZIP+BASE64', gzipBase64],
  ];
  for (const [encoding, encode] of encodings) {
    it(`reads a value with encoding ${encoding ?? '(none)'}`, async () => {
      setKey('pke.config', encode(yaml));
      if (encoding) setKey('pke.config.encoding', encoding);
      const result = await show();
      expect(result.stderr).toBe('');
      expect(result.exitCode).toBe(0);
      const summary = JSON.parse(result.stdout);
      expect(summary.source).toBe('guestinfo.pke.config via vmware-rpctool');
      expect(summary.cluster).toBe('prod (prod-a1b2)');
      expect(summary.kubernetesVersion).toBe('1.31.2');
      expect(calls()).toContain('vmware-rpctool info-get guestinfo.pke.config');
    });
  }

  it('treats an unknown encoding as plain text, as cloud-init does', async () => {
    setKey('pke.config', yaml);
    setKey('pke.config.encoding', 'rot13');
    expect((await show()).exitCode).toBe(0);
  });

  it('never prints the node token', async () => {
    const token = fakeNodeToken({ sub: 'node-a', exp: 4102444800 });
    setKey('pke.config', toYaml(validConfig({ controller: { ...validConfig().controller, token } })));
    const result = await show();
    expect(result.exitCode).toBe(0);
    expect(result.stdout + result.stderr).not.toContain(token);
    expect(JSON.parse(result.stdout).token).toBe('set, for node-a, expires 2100-01-01T00:00:00.000Z');
  });
});

describe('absent values and transport fallbacks', () => {
  for (const absent of ['', '   \n', '---', ' --- ']) {
    it(`treats ${JSON.stringify(absent)} as absent and falls through to the next source`, async () => {
      setKey('pke.config', absent);
      const result = await show();
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(/no agent config found/);
    });
  }

  it('asks vmtoolsd when vmware-rpctool fails with something other than a missing key', async () => {
    setKey('pke.config', gzipBase64(toYaml(validConfig())));
    setKey('pke.config.encoding', 'gzip+base64');
    const result = await show({ PKE_RPCTOOL_MODE: 'denied' });
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout).source).toBe('guestinfo.pke.config via vmtoolsd');
    expect(calls()).toEqual(
      expect.arrayContaining(['vmware-rpctool info-get guestinfo.pke.config', 'vmtoolsd info-get guestinfo.pke.config']),
    );
  });

  it('does not ask vmtoolsd when vmware-rpctool says the key is not set', async () => {
    const result = await show();
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('vmware-rpctool: guestinfo.pke.config is not set');
    expect(calls()).toEqual(['vmware-rpctool info-get guestinfo.pke.config']);
  });

  it('reads the environment before the tools when VMX_GUESTINFO is set, as cloud-init does', async () => {
    setKey('pke.config', toYaml(validConfig({ cluster: { id: 'other-c3d4', name: 'other' } })));
    const result = await show({ VMX_GUESTINFO: '1', VMX_GUESTINFO_PKE_CONFIG: toYaml(validConfig()) });
    expect(result.exitCode).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.source).toBe('guestinfo.pke.config via environment');
    expect(summary.cluster).toBe('prod (prod-a1b2)');
    expect(calls()).toEqual([]);
  });

  it('uses the environment transport with its encoding key', async () => {
    const result = await show({
      PKE_RPCTOOL_MODE: 'off-vmware',
      PKE_VMTOOLSD_MODE: 'off-vmware',
      VMX_GUESTINFO: '1',
      VMX_GUESTINFO_PKE_CONFIG: gzipBase64(toYaml(validConfig())),
      VMX_GUESTINFO_PKE_CONFIG_ENCODING: 'gz+b64',
    });
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout).source).toBe('guestinfo.pke.config via environment');
  });

  it('reports every source it tried when none has a config (exit 2)', async () => {
    const result = await show({ PKE_RPCTOOL_MODE: 'off-vmware', PKE_VMTOOLSD_MODE: 'off-vmware' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('vmware-rpctool: not running on VMware');
    expect(result.stderr).toContain('vmtoolsd: not running on VMware (vmtoolsd exited 1 with no message)');
    expect(result.stderr).toContain('environment: VMX_GUESTINFO is not set');
  });

  it('is an operational failure (exit 1) when the tools fail for another reason and nothing else has a config', async () => {
    const result = await show({ PKE_RPCTOOL_MODE: 'denied', PKE_VMTOOLSD_MODE: 'denied' });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('Permission denied');
  });

  it('works with the real open-vm-tools off VMware: not on VMware, then the environment', async () => {
    const real = await runAgent(['config', 'show', '--json', '--root', root], {
      path: searchPath([]),
      env: { VMX_GUESTINFO: '1', VMX_GUESTINFO_PKE_CONFIG: toYaml(validConfig()) },
    });
    expect(real.exitCode).toBe(0);
    expect(JSON.parse(real.stdout).source).toBe('guestinfo.pke.config via environment');
  });

  it('reads --config FILE first, YAML or JSON', async () => {
    setKey('pke.config', 'cluster: {');
    const file = path.join(scratch.dir, 'agent.json');
    writeFileSync(file, JSON.stringify(validConfig()));
    const result = await show({}, ['--config', file]);
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout).source).toBe(`file ${file}`);
    expect(calls()).toEqual([]);
  });
});

describe('bad config: exit 2, the key named, nothing written', () => {
  const base = validConfig();
  const cases: [string, () => void, RegExp][] = [
    [
      'malformed base64',
      () => {
        setKey('pke.config', 'not base64!!');
        setKey('pke.config.encoding', 'base64');
      },
      /guestinfo\.pke\.config: value is not valid base64/,
    ],
    [
      'truncated gzip',
      () => {
        const bytes = Buffer.from(gzipBase64(toYaml(base)), 'base64');
        setKey('pke.config', bytes.subarray(0, bytes.length - 12).toString('base64'));
        setKey('pke.config.encoding', 'gzip+base64');
      },
      /guestinfo\.pke\.config: gzip\+base64 value is not valid gzip/,
    ],
    ['bad YAML', () => setKey('pke.config', 'cluster: {id: x'), /not valid YAML or JSON/],
    ['bad JSON', () => setKey('pke.config', '{"cluster": {"id": "x",}'), /not valid YAML or JSON/],
    ['a list instead of a mapping', () => setKey('pke.config', '- a\n- b\n'), /must be a mapping of keys, not a list/],
    [
      'wrong type',
      () => setKey('pke.config', toYaml({ ...base, controlPlaneEndpoint: { vip: '10.10.0.100', port: '6443' } })),
      /controlPlaneEndpoint\.port: expected number, got string/,
    ],
    ['missing key', () => setKey('pke.config', toYaml({ ...base, role: undefined })), /role: is required/],
    ['bad enum', () => setKey('pke.config', toYaml({ ...base, role: 'etcd' })), /role: Invalid option/],
    [
      'bad version',
      () => setKey('pke.config', toYaml({ ...base, kubernetes: { version: '1.31' } })),
      /kubernetes\.version: expected a Kubernetes version such as 1\.31\.2/,
    ],
    ['unknown key at the top', () => setKey('pke.config', toYaml({ ...base, colour: 'blue' })), /colour: unknown key/],
    [
      'unknown nested key',
      () => setKey('pke.config', toYaml({ ...base, cluster: { ...base.cluster, region: 'eu' } })),
      /cluster\.region: unknown key/,
    ],
    [
      'a node label the kubelet may not set',
      () => setKey('pke.config', toYaml({ ...base, labels: { 'node-role.kubernetes.io/control-plane': '' } })),
      /labels\.node-role\.kubernetes\.io\/control-plane: the kubelet may not set labels under kubernetes\.io or k8s\.io itself/,
    ],
    [
      'bad CIDR',
      () => setKey('pke.config', toYaml({ ...base, kubernetes: { version: '1.31.2', podCidr: '10.244.0.0/33' } })),
      /kubernetes\.podCidr: expected a CIDR/,
    ],
    [
      'not an https controller',
      () => setKey('pke.config', toYaml({ ...base, controller: { ...base.controller, url: 'http://c:9443' } })),
      /controller\.url: expected an https:\/\/ URL/,
    ],
    [
      'oversized value',
      () => setKey('pke.config', `# ${'x'.repeat(70 * 1024)}\n${toYaml(base)}`),
      /guestinfo\.pke\.config: value is \d+ bytes, over the guestinfo limit of 65536/,
    ],
  ];
  for (const [name, arrange, message] of cases) {
    it(name, async () => {
      arrange();
      const result = await runAgent(['bootstrap', '--root', root], {
        path: searchPath([VMWARE_STANDINS]),
        env: { PKE_GUESTINFO_DIR: guestinfo },
      });
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.exitCode).toBe(2);
      expect(filesUnder(root)).toEqual([]);
      expect(calls().filter((c) => c.includes('info-set'))).toEqual([]);
    });
  }
});

describe('redaction after a successful read', () => {
  it('sets the value to --- and the encoding to a blank, and keeps a 0600 copy for reruns', async () => {
    setKey('pke.config', gzipBase64(toYaml(validConfig())));
    setKey('pke.config.encoding', 'gzip+base64');
    // Bootstrap goes on to talk to a controller that is not there; redaction happens before that.
    await runAgent(['bootstrap', '--phase', 'preflight', '--root', root], {
      path: searchPath([VMWARE_STANDINS]),
      env: { PKE_GUESTINFO_DIR: guestinfo },
    });
    expect(calls()).toEqual(
      expect.arrayContaining([
        'vmware-rpctool info-set guestinfo.pke.config ---',
        'vmware-rpctool info-set guestinfo.pke.config.encoding  ',
      ]),
    );
    expect(key('pke.config')).toBe('---');
    expect(key('pke.config.encoding')).toBe(' ');

    const saved = path.join(root, 'var/lib/pke-agent/config.json');
    expect(JSON.parse(readFileSync(saved, 'utf8')).cluster.id).toBe('prod-a1b2');
    const { statSync } = await import('node:fs');
    expect(statSync(saved).mode & 0o777).toBe(0o600);

    // The next run finds guestinfo redacted (absent) and uses the saved copy.
    const again = await show();
    expect(again.exitCode).toBe(0);
    expect(JSON.parse(again.stdout).source).toBe(`saved copy ${saved}`);
  });

  it('leaves guestinfo alone with --keep-guestinfo', async () => {
    setKey('pke.config', toYaml(validConfig()));
    await runAgent(['bootstrap', '--phase', 'preflight', '--keep-guestinfo', '--root', root], {
      path: searchPath([VMWARE_STANDINS]),
      env: { PKE_GUESTINFO_DIR: guestinfo },
    });
    expect(calls().filter((c) => c.includes('info-set'))).toEqual([]);
    expect(key('pke.config')).toContain('prod-a1b2');
  });
});
