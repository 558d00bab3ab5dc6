import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSummarySchema } from '../../agent/protocol/api.ts';
import { scratchDir } from '../helpers/cli.ts';
import { controllerCommand, killProcess, spawnController, type ControllerProcess } from '../controller/helpers.ts';

let proc: ControllerProcess;
const data = scratchDir('addons-cli');

const controllerCli = (...args: string[]) => controllerCommand(proc, data.dir, args);

beforeAll(async () => {
  proc = await spawnController(data.dir);
});
afterAll(async () => {
  await killProcess(proc?.child, 'SIGTERM');
  data.remove();
});

describe('controller cluster create: add-on flags', () => {
  it('sets the CNI and the MetalLB pool', async () => {
    const created = await controllerCli(
      'cluster',
      'create',
      '--name',
      'lb',
      '--kubernetes-version',
      '1.31.2',
      '--vip',
      '10.50.0.10',
      '--cni',
      'flannel',
      '--metallb-address',
      '10.50.0.200-10.50.0.220',
      '--metallb-address',
      '10.50.1.0/28',
      '--json',
    );
    expect(created.exitCode, created.stderr).toBe(0);
    expect(clusterSummarySchema.parse(JSON.parse(created.stdout)).spec.addons).toEqual({
      cni: 'flannel',
      kubeProxy: true,
      coreDns: true,
      metallb: { addresses: ['10.50.0.200-10.50.0.220', '10.50.1.0/28'] },
    });
  });

  it("takes the site's node runtime: cgroup driver, cgroup v1 hosts, image mirror; names a bad one (exit 2)", async () => {
    const created = await controllerCli(
      'cluster',
      'create',
      '--name',
      'site',
      '--kubernetes-version',
      '1.37.2',
      '--vip',
      '10.50.0.10',
      '--cni',
      'none',
      '--cgroup-driver',
      'cgroupfs',
      '--allow-cgroup-v1',
      '--image-repository',
      'registry.example.net:5000/k8s',
      '--json',
    );
    expect(created.exitCode, created.stderr).toBe(0);
    expect(clusterSummarySchema.parse(JSON.parse(created.stdout)).spec).toMatchObject({
      cgroupDriver: 'cgroupfs',
      allowCgroupV1: true,
      imageRepository: 'registry.example.net:5000/k8s',
      addons: { cni: 'none' },
    });
    const bad = await controllerCli(
      'cluster',
      'create',
      '--name',
      'bad-repo',
      '--kubernetes-version',
      '1.37.2',
      '--vip',
      '10.50.0.10',
      '--image-repository',
      'https://registry.example.net',
    );
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('--image-repository: expected a registry and path');
  });

  it('names the flag when an address is not a CIDR or range (exit 2)', async () => {
    const result = await controllerCli(
      'cluster',
      'create',
      '--name',
      'bad',
      '--kubernetes-version',
      '1.31.2',
      '--vip',
      '10.50.0.10',
      '--metallb-address',
      '10.50.0.300',
    );
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('--metallb-address: expected a CIDR');
  });
});
