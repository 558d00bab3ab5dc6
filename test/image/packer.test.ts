import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEMPLATE_VERSION_KEY } from '../../agent/controller/day-two/machines.ts';
import { inspectVm, simulatorBinary, simulatorMissing, startSimulator, type Simulator } from './simulator.ts';
import { REPO } from '../helpers/cli.ts';
import { PACKER_DIR, run, systemCommand, tailOf, titled } from './support.ts';

const TEMPLATE = path.join(PACKER_DIR, 'pke-node.pkr.hcl');
const packer = systemCommand('packer');
const packerMissing = packer ? undefined : 'packer not installed (Debian package packer; scripts/setup.sh installs it as root)';

// No checkpoint (version check) calls to the internet; nothing from the user's Packer config.
const scratch = mkdtempSync(path.join(tmpdir(), 'pke-packer-'));
const PACKER_ENV = {
  ...process.env,
  CHECKPOINT_DISABLE: '1',
  PACKER_CONFIG_DIR: scratch,
  PACKER_CACHE_DIR: path.join(scratch, 'cache'),
  HOME: scratch,
};
// validate and build need the agent binary to exist; its content does not matter to them.
const fakeAgent = path.join(scratch, 'pke-agent');
writeFileSync(fakeAgent, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
// The fetched add-on bundles (scripts/addons/fetch.ts) likewise: a directory must be there to upload.
const addonsDir = path.join(scratch, 'addons');
mkdirSync(addonsDir);
// A literal checksum keeps `packer validate` from downloading the ISO's SHA256SUMS.
const OFFLINE_VARS = [
  '-var',
  `agent_binary=${fakeAgent}`,
  '-var',
  `addons_dir=${addonsDir}`,
  '-var',
  `iso_checksum=sha256:${'0'.repeat(64)}`,
];

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function packerRun(args: string[], timeoutMs = 120_000) {
  return run(packer ?? 'packer', args, { cwd: REPO, env: PACKER_ENV, timeoutMs });
}

describe.skipIf(packerMissing)(titled('packer template', packerMissing), () => {
  it('is in canonical format (packer fmt -check)', async () => {
    const result = await packerRun(['fmt', '-check', '-diff', 'packer']);
    expect(result.exitCode, result.all).toBe(0);
    const vars = await packerRun(['fmt', '-check', '-diff', 'packer/example.pkrvars.hcl']);
    expect(vars.exitCode, vars.all).toBe(0);
  });

  it('keeps the required_plugins block for current Packer out of the template Packer 1.6.6 reads', async () => {
    expect(readFileSync(TEMPLATE, 'utf8')).not.toMatch(/required_plugins/);
    const example = readFileSync(path.join(PACKER_DIR, 'plugins.pkr.hcl.example'), 'utf8');
    expect(example).toMatch(/required_plugins\s*\{\s*vsphere\s*=\s*\{[^}]*source\s*=\s*"github.com\/hashicorp\/vsphere"/);
    const copy = path.join(scratch, 'plugins.pkr.hcl');
    copyFileSync(path.join(PACKER_DIR, 'plugins.pkr.hcl.example'), copy);
    const fmt = await packerRun(['fmt', '-check', copy]);
    expect(fmt.exitCode, fmt.all).toBe(0);
  });

  it('validates, both sources, with the example variables file', async () => {
    const result = await packerRun(['validate', '-var-file=packer/example.pkrvars.hcl', ...OFFLINE_VARS, TEMPLATE]);
    expect(result.exitCode, result.all).toBe(0);
    // Both sources are part of the build that was validated.
    const inspect = await packerRun(['inspect', TEMPLATE]);
    expect(inspect.all).toContain('vsphere-clone.pke-node');
    expect(inspect.all).toContain('vsphere-iso.pke-node');
  });

  it('rejects a package_source it does not know and a version with a leading v', async () => {
    const result = await packerRun([
      'validate',
      '-var-file=packer/example.pkrvars.hcl',
      ...OFFLINE_VARS,
      '-var',
      'package_source=yum',
      '-var',
      'kubernetes_version=v1.31.2',
      TEMPLATE,
    ]);
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/package_source must be "apt" or "local"/);
    expect(result.all).toMatch(/kubernetes_version must be a version such as 1\.31\.2/);
  });
});

const buildMissing = packerMissing ?? simulatorMissing();

describe.skipIf(buildMissing)(titled('packer build of vsphere-clone against the vCenter simulator', buildMissing), () => {
  let sim: Simulator;

  beforeAll(async () => {
    const binary = await simulatorBinary();
    sim = await startSimulator(binary.path);
  }, 10 * 60_000);

  afterAll(async () => {
    await sim?.stop();
  });

  function build(vars: Record<string, string>) {
    const base: Record<string, string> = {
      vcenter_server: sim.server,
      vcenter_username: sim.username,
      vcenter_password: sim.password,
      vcenter_insecure: 'true',
      datacenter: 'DC0',
      cluster: 'DC0_C0',
      host: 'DC0_C0_H0',
      datastore: 'LocalDS_0',
      network: 'VM Network',
      base_template: 'DC0_H0_VM0',
      communicator: 'none',
    };
    const args = Object.entries({ ...base, ...vars }).flatMap(([k, v]) => ['-var', `${k}=${v}`]);
    return packerRun(['build', '-color=false', '-only=vsphere-clone.pke-node', ...args, ...OFFLINE_VARS, TEMPLATE], 5 * 60_000);
  }

  it('leaves a template in the simulator inventory with the requested CPU, memory, disk and ExtraConfig', async () => {
    const name = `pke-node-ci-${process.pid}`;
    const result = await build({
      template_name: name,
      cpus: '4',
      memory_mb: '6144',
      disk_size_mb: '51200',
      kubernetes_version: '1.31.2',
      containerd_version: '1.6.20',
    });
    expect(result.exitCode, tailOf(result.all)).toBe(0);

    // Asked of the simulator's API, not taken from Packer's output.
    const vm = await inspectVm(sim, `/DC0/vm/${name}`);
    expect(vm).toMatchObject({ name, template: true, powerState: 'poweredOff', numCPU: 4, memoryMB: 6144 });
    expect(vm.diskKB).toContain(51200 * 1024);
    expect(vm.networks).toContain('VM Network');
    // The key the controller reads a template's version from (upgrades by rolling replacement).
    expect(vm.extraConfig).toMatchObject({
      'disk.EnableUUID': 'TRUE',
      [TEMPLATE_VERSION_KEY]: '1.31.2',
      'pke.image.containerd-version': '1.6.20',
    });

    // Cloned, not converted: the base VM is still there and still a VM.
    const base = await inspectVm(sim, '/DC0/vm/DC0_H0_VM0');
    expect(base.template).toBe(false);
  });

  it('keeps the built simulator in the cache: asking again does not rebuild it', async () => {
    const again = await simulatorBinary();
    expect(again).toEqual({ path: sim.binary, built: false });
  });

  it('fails, naming the VM, when the base template is not in the inventory', async () => {
    const result = await build({ template_name: `pke-node-missing-${process.pid}`, base_template: 'no-such-base' });
    expect(result.exitCode).not.toBe(0);
    expect(result.all).toMatch(/no-such-base/);
    expect(result.all).toMatch(/not found/);
  });
});
