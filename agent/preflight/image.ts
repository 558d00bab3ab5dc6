import { lstat, readlink } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { bundleProblem } from '../addons/bundle.ts';
import { ADDONS_BUNDLE_DIR, ADDON_NAMES, ADDON_VERSIONS } from '../addons/catalog.ts';
import { errorMessage } from '../core/errors.ts';
import { formatIssues } from '../core/schema-issues.ts';
import type { Host } from '../host/host.ts';
import { KERNEL_MODULES, SYSCTLS } from '../node/kernel.ts';
import type { CheckResult } from './check.ts';

/** Written by packer/scripts/90-manifest.sh; the versions every node of this image runs. */
const IMAGE_MANIFEST_PATH = '/etc/pke-agent/image.json';

const version = z.string().regex(/^v?\d+\.\d+\.\d+[0-9A-Za-z.+~-]*$/, 'expected a version such as 1.31.2');

export const imageManifestSchema = z.object({
  schemaVersion: z.literal(1),
  builtAt: z.iso.datetime(),
  versions: z.object({
    kubernetes: version,
    containerd: version,
    runc: version,
    crictl: version,
    agent: version,
  }),
  packageSource: z.enum(['apt', 'local']).optional(),
  /** Installed Debian package versions, for the record. */
  packages: z.record(z.string(), z.string()).optional(),
  imageRegistry: z.string().optional(),
  imagesPrepulled: z.boolean().optional(),
});
export type ImageManifest = z.infer<typeof imageManifestSchema>;
type Pin = keyof ImageManifest['versions'];

/**
 * A reported version matches a pin when it is the pin, or the pin followed by a Debian or
 * semver suffix: pin 1.6.20 matches `v1.6.20` and `1.6.20~ds1`, not `1.6.201`.
 */
export function versionMatchesPin(reported: string, pin: string): boolean {
  const have = reported.replace(/^v/, '').replace(/^\d+:/, '');
  const want = pin.replace(/^v/, '');
  return have === want || (have.startsWith(want) && /^[-~+]/.test(have.slice(want.length)));
}

/** The first version-looking token of a `--version` answer. */
export function reportedVersion(output: string): string | undefined {
  return /\bv?(\d+\.\d+\.\d+[0-9A-Za-z.+~-]*)/.exec(output)?.[1];
}

interface BinarySpec {
  command: string;
  args: string[];
  pin: Pin;
  parse?: (stdout: string) => string | undefined;
}

const PINNED_BINARIES: BinarySpec[] = [
  { command: 'kubeadm', args: ['version', '-o', 'short'], pin: 'kubernetes' },
  { command: 'kubelet', args: ['--version'], pin: 'kubernetes' },
  { command: 'kubectl', args: ['version', '--client', '-o', 'json'], pin: 'kubernetes', parse: kubectlVersion },
  { command: 'containerd', args: ['--version'], pin: 'containerd' },
  { command: 'runc', args: ['--version'], pin: 'runc' },
  { command: 'crictl', args: ['--version'], pin: 'crictl' },
  { command: 'pke-agent', args: ['version'], pin: 'agent' },
];

const DATASOURCE_LIST = ['VMware', 'None'];

/**
 * `pke-agent preflight --image`: the self-test at the end of an image build. Everything is
 * read through `host`, so `--root` points it at a mounted image; binaries are looked up on
 * the host's PATH. Every failing check says what is wrong and what was expected.
 */
export async function imageChecks(host: Host): Promise<CheckResult[]> {
  const { check: manifestCheck, manifest } = await readManifest(host);
  const [binaries, rest] = await Promise.all([
    Promise.all([
      ...PINNED_BINARIES.map((spec) => binaryCheck(host, spec, manifest)),
      presenceCheck(host, 'keepalived', ['keepalived'], 'keepalived holds the API VIP on control-plane nodes'),
      presenceCheck(host, 'open-vm-tools', ['vmware-rpctool', 'vmtoolsd'], 'guestinfo is read with vmware-rpctool or vmtoolsd'),
      presenceCheck(host, 'cloud-init', ['cloud-init'], 'cloud-init runs pke-agent bootstrap at first boot'),
    ]),
    Promise.all([
      cloudInitChecks(host),
      kernelModulesCheck(host),
      sysctlCheck(host),
      machineIdCheck(host),
      sshHostKeysCheck(host),
      kubeletEnabledCheck(host),
      addonsBundleCheck(host),
    ]),
  ]);
  return [manifestCheck, ...binaries, ...rest.flat()];
}

async function readManifest(host: Host): Promise<{ check: CheckResult; manifest?: ImageManifest }> {
  const name = 'image manifest';
  const text = await host.readText(IMAGE_MANIFEST_PATH);
  if (text === undefined) {
    return {
      check: fail(
        name,
        `${IMAGE_MANIFEST_PATH} is missing; expected the manifest written by the image build (packer/scripts/90-manifest.sh)`,
      ),
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { check: fail(name, `${IMAGE_MANIFEST_PATH} is not JSON (${errorMessage(error)}); expected an image manifest`) };
  }
  const parsed = imageManifestSchema.safeParse(json);
  if (!parsed.success) {
    return { check: fail(name, `${IMAGE_MANIFEST_PATH} does not validate: ${formatIssues(parsed.error.issues, json)}`) };
  }
  const v = parsed.data.versions;
  return {
    manifest: parsed.data,
    check: pass(
      name,
      `${IMAGE_MANIFEST_PATH}: kubernetes ${v.kubernetes}, containerd ${v.containerd}, runc ${v.runc}, crictl ${v.crictl}, agent ${v.agent}, built ${parsed.data.builtAt}`,
    ),
  };
}

async function binaryCheck(host: Host, spec: BinarySpec, manifest: ImageManifest | undefined): Promise<CheckResult> {
  const pin = manifest?.versions[spec.pin];
  const expected = pin ? `${spec.command} ${pin}` : spec.command;
  const found = await host.which(spec.command);
  if (!found) return fail(spec.command, `${spec.command} is not on PATH (${host.searchPath}); expected ${expected}`);
  if (!pin) return pass(spec.command, `${found} (no pinned version to compare: the image manifest is unusable)`);

  const shown = [spec.command, ...spec.args].join(' ');
  let stdout: string;
  try {
    stdout = (await host.run(found, spec.args, { timeoutMs: 15_000 })).stdout;
  } catch (error) {
    return fail(spec.command, `\`${shown}\` failed: ${errorMessage(error)}; expected it to report ${pin}`);
  }
  const reported = (spec.parse ?? reportedVersion)(stdout);
  if (!reported) return fail(spec.command, `\`${shown}\` reported no version (${oneLine(stdout)}); expected ${pin}`);
  if (!versionMatchesPin(reported, pin)) {
    return fail(spec.command, `${found} reports ${reported}; the image manifest pins ${spec.pin} ${pin}`);
  }
  return pass(spec.command, `${found} reports ${reported} (pinned ${pin})`);
}

function kubectlVersion(stdout: string): string | undefined {
  try {
    const parsed = JSON.parse(stdout) as { clientVersion?: { gitVersion?: unknown } };
    const git = parsed.clientVersion?.gitVersion;
    return typeof git === 'string' ? reportedVersion(git) : undefined;
  } catch {
    return undefined;
  }
}

async function presenceCheck(host: Host, name: string, commands: string[], why: string): Promise<CheckResult> {
  for (const command of commands) {
    const found = await host.which(command);
    if (found) return pass(name, found);
  }
  return fail(name, `${commands.join(' or ')} not on PATH (${host.searchPath}); expected ${name} installed: ${why}`);
}

/** cloud.cfg, then cloud.cfg.d/*.cfg in name order, later keys winning: how cloud-init merges them. */
async function cloudConfig(host: Host): Promise<{ values: Map<string, { value: unknown; file: string }>; errors: string[] }> {
  const files = [
    '/etc/cloud/cloud.cfg',
    ...(await host.list('/etc/cloud/cloud.cfg.d')).filter((f) => f.endsWith('.cfg')).map((f) => `/etc/cloud/cloud.cfg.d/${f}`),
  ];
  const values = new Map<string, { value: unknown; file: string }>();
  const errors: string[] = [];
  for (const file of files) {
    const text = await host.readText(file);
    if (text === undefined) continue;
    let doc: unknown;
    try {
      doc = YAML.parse(text);
    } catch (error) {
      errors.push(`${file} is not valid YAML (${errorMessage(error)})`);
      continue;
    }
    if (doc && typeof doc === 'object' && !Array.isArray(doc)) {
      for (const [key, value] of Object.entries(doc)) values.set(key, { value, file });
    }
  }
  return { values, errors };
}

async function cloudInitChecks(host: Host): Promise<CheckResult[]> {
  const { values, errors } = await cloudConfig(host);
  const results: CheckResult[] = [];
  const expected = `[ ${DATASOURCE_LIST.join(', ')} ]`;

  const datasource = values.get('datasource_list');
  if (errors.length > 0) {
    results.push(fail('cloud-init datasource', `${errors.join('; ')}; expected datasource_list: ${expected}`));
  } else if (!datasource) {
    results.push(
      fail(
        'cloud-init datasource',
        `no datasource_list in /etc/cloud/cloud.cfg or cloud.cfg.d; expected ${expected} (cloud-init/image/99-pke-datasource.cfg)`,
      ),
    );
  } else if (!Array.isArray(datasource.value) || datasource.value.map(String).join(',') !== DATASOURCE_LIST.join(',')) {
    results.push(
      fail(
        'cloud-init datasource',
        `datasource_list is ${JSON.stringify(datasource.value)} (from ${datasource.file}); expected ${expected}`,
      ),
    );
  } else {
    results.push(pass('cloud-init datasource', `datasource_list ${expected} (from ${datasource.file})`));
  }

  const preserve = values.get('preserve_hostname');
  if (preserve?.value === true) {
    results.push(
      fail(
        'cloud-init hostname',
        `preserve_hostname is true (from ${preserve.file}); expected false, so that each clone takes local-hostname from its metadata`,
      ),
    );
  } else {
    results.push(
      pass(
        'cloud-init hostname',
        `preserve_hostname ${String(preserve?.value ?? false)}${preserve ? ` (from ${preserve.file})` : ' (default)'}`,
      ),
    );
  }

  const etcHosts = values.get('manage_etc_hosts');
  if (etcHosts?.value === true || etcHosts?.value === 'template') {
    results.push({
      name: 'cloud-init /etc/hosts',
      ok: false,
      severity: 'warning',
      detail: `manage_etc_hosts is ${String(etcHosts.value)} (from ${etcHosts.file}): /etc/hosts is rewritten from a template at every boot; expected localhost or false`,
    });
  } else {
    results.push(pass('cloud-init /etc/hosts', `manage_etc_hosts ${String(etcHosts?.value ?? false)}`));
  }

  const leftovers = [
    ...((await host.exists('/var/lib/cloud/instance')) ? ['/var/lib/cloud/instance'] : []),
    ...(await host.list('/var/lib/cloud/instances')).map((i) => `/var/lib/cloud/instances/${i}`),
    ...((await host.list('/var/lib/cloud/seed')).length > 0 ? ['/var/lib/cloud/seed'] : []),
  ];
  results.push(
    leftovers.length > 0
      ? fail('cloud-init state', `state from the build remains: ${leftovers.join(', ')}; expected none (cloud-init clean --logs --seed)`)
      : pass('cloud-init state', 'no instance state or seed'),
  );
  return results;
}

/** Non-comment lines of every *.conf in a directory, in name order, with the file each came from. */
async function confLines(host: Host, dir: string): Promise<{ line: string; file: string }[]> {
  const out: { line: string; file: string }[] = [];
  for (const name of (await host.list(dir)).filter((f) => f.endsWith('.conf'))) {
    const file = `${dir}/${name}`;
    for (const raw of ((await host.readText(file)) ?? '').split('\n')) {
      const line = raw.trim();
      if (line && !line.startsWith('#') && !line.startsWith(';')) out.push({ line, file });
    }
  }
  return out;
}

async function kernelModulesCheck(host: Host): Promise<CheckResult> {
  const listed = new Set((await confLines(host, '/etc/modules-load.d')).map((l) => l.line));
  const missing = KERNEL_MODULES.filter((m) => !listed.has(m));
  return missing.length > 0
    ? fail(
        'kernel modules',
        `${missing.join(', ')} not listed in /etc/modules-load.d/*.conf; expected ${KERNEL_MODULES.join(', ')} loaded at boot`,
      )
    : pass('kernel modules', `${KERNEL_MODULES.join(', ')} load at boot`);
}

async function sysctlCheck(host: Host): Promise<CheckResult> {
  const effective = new Map<string, { value: string; file: string }>();
  for (const { line, file } of await confLines(host, '/etc/sysctl.d')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim().replace(/^-/, '').replaceAll('/', '.');
    effective.set(key, { value: line.slice(eq + 1).trim(), file });
  }
  const wrong = Object.entries(SYSCTLS)
    .filter(([key, want]) => effective.get(key)?.value !== want)
    .map(([key, want]) => {
      const have = effective.get(key);
      return have ? `${key} = ${have.value} (in ${have.file}), expected ${want}` : `${key} is not set, expected ${want}`;
    });
  return wrong.length > 0
    ? fail('sysctl', `${wrong.join('; ')} (in /etc/sysctl.d/*.conf)`)
    : pass(
        'sysctl',
        Object.entries(SYSCTLS)
          .map(([k, v]) => `${k} = ${v}`)
          .join(', '),
      );
}

async function machineIdCheck(host: Host): Promise<CheckResult> {
  const name = 'machine-id';
  const id = await host.readText('/etc/machine-id');
  if (id === undefined)
    return fail(name, "/etc/machine-id is missing; expected an empty file that systemd fills in at each clone's first boot");
  if (id.trim() !== '')
    return fail(name, `/etc/machine-id holds ${id.trim()}; expected an empty file, so that every clone gets its own id`);

  const dbus = host.file('/var/lib/dbus/machine-id');
  try {
    const stats = await lstat(dbus);
    if (stats.isSymbolicLink()) {
      const target = await readlink(dbus);
      if (path.posix.resolve('/var/lib/dbus', target) !== '/etc/machine-id') {
        return fail(name, `/var/lib/dbus/machine-id links to ${target}; expected a link to /etc/machine-id`);
      }
    } else if (((await host.readText('/var/lib/dbus/machine-id')) ?? '').trim() !== '') {
      return fail(name, "/var/lib/dbus/machine-id holds the build's id; expected a link to /etc/machine-id");
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return pass(name, '/etc/machine-id is empty');
}

async function sshHostKeysCheck(host: Host): Promise<CheckResult> {
  const keys = (await host.list('/etc/ssh')).filter((f) => f.startsWith('ssh_host_'));
  return keys.length > 0
    ? fail(
        'ssh host keys',
        `${keys.map((k) => `/etc/ssh/${k}`).join(', ')} remain; expected none, so that every clone makes its own at first boot`,
      )
    : pass('ssh host keys', 'none in /etc/ssh');
}

async function kubeletEnabledCheck(host: Host): Promise<CheckResult> {
  try {
    return (await host.service.isEnabled('kubelet'))
      ? pass('kubelet enabled', 'kubelet.service is enabled')
      : fail(
          'kubelet enabled',
          'kubelet.service is not enabled; expected enabled (not started), so that it runs once kubeadm has configured it',
        );
  } catch (error) {
    return fail('kubelet enabled', `could not ask systemctl: ${errorMessage(error)}; expected kubelet.service enabled`);
  }
}

/** Every add-on this agent can install, at the version it pins: a cluster picks its CNI only at creation. */
async function addonsBundleCheck(host: Host): Promise<CheckResult> {
  const problems = (await Promise.all(ADDON_NAMES.map((name) => bundleProblem(host, name)))).filter((p) => p !== undefined);
  return problems.length > 0
    ? fail('add-on bundle', `${problems.join('; ')} (packer/scripts/75-addons.sh copies addons/ to ${ADDONS_BUNDLE_DIR})`)
    : pass('add-on bundle', ADDON_NAMES.map((name) => `${name} ${ADDON_VERSIONS[name]}`).join(', '));
}

function pass(name: string, detail: string): CheckResult {
  return { name, ok: true, severity: 'error', detail };
}

function fail(name: string, detail: string): CheckResult {
  return { name, ok: false, severity: 'error', detail };
}

function oneLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line ? `"${line.slice(0, 120)}"` : 'empty output';
}
