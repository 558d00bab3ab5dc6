import { cpSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { renderCsiConfig } from '../../agent/addons/vsphere.ts';
import { renderInitConfig } from '../../agent/kube/kubeadm-config.ts';
import { createAddonsPhase } from '../../agent/phases/addons.ts';
import { vsphereCredentialsSchema, type VsphereCredentials } from '../../agent/protocol/api.ts';
import { AdminClient } from '../../agent/protocol/client.ts';
import { ControllerRequestError } from '../../agent/protocol/errors.ts';
import { scratchDir } from '../helpers/cli.ts';
import {
  NO_RETRY,
  addNode,
  controllerCommand,
  killProcess,
  registration,
  spawnController,
  type ControllerProcess,
} from '../controller/helpers.ts';
import { agentConfig, createStandinNode, fakeController, phaseContext } from '../helpers/standins.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const PASSWORD = 'S3cret"pass\\word-7f3a9c';
const CREDENTIALS: VsphereCredentials = vsphereCredentialsSchema.parse({
  server: 'vcenter.example.net',
  username: 'k8s-csi@vsphere.local',
  password: PASSWORD,
  datacenters: ['DC0'],
});

/** Every file below a directory, as text. */
function allText(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => readFileSync(path.join(entry.parentPath, entry.name), 'latin1'))
    .join('\n');
}

describe('vSphere CPI and CSI: the controller keeps the vCenter connection and hands it to the leader only', () => {
  let proc: ControllerProcess;
  let admin: AdminClient;
  const data = scratchDir('vsphere');
  const cli = (...args: string[]) => controllerCommand(proc, data.dir, args);

  beforeAll(async () => {
    proc = await spawnController(data.dir);
    admin = new AdminClient({ url: proc.url, caCert: proc.caCertPem, token: proc.adminToken, retry: NO_RETRY });
  });
  afterAll(async () => {
    await admin?.close();
    await killProcess(proc?.child, 'SIGTERM');
    data.remove();
  });

  it('stores what the admin set (0600), serves it to the lease holder only, and shows the password nowhere', async () => {
    const created = await cli(
      'cluster',
      'create',
      '--name',
      'vs',
      '--kubernetes-version',
      '1.31.2',
      '--vip',
      '10.60.0.10',
      '--file',
      writeSpec({ addons: { cni: 'calico', vsphere: { storagePolicy: 'gold' } } }),
      '--json',
    );
    expect(created.exitCode, created.stderr).toBe(0);
    const clusterId = (JSON.parse(created.stdout) as { id: string }).id;
    const passwordFile = path.join(data.dir, '..', `vsphere-password-${process.pid}`);
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    const set = await cli(
      'cluster',
      'vsphere',
      '--cluster',
      'vs',
      '--server',
      CREDENTIALS.server,
      '--username',
      CREDENTIALS.username,
      '--password-file',
      passwordFile,
      '--datacenter',
      'DC0',
    );
    expect(set.exitCode, set.stderr).toBe(0);
    expect(set.stdout).toBe(`vCenter connection for vs set: ${CREDENTIALS.username} at ${CREDENTIALS.server}`);
    expect(statSync(path.join(data.dir, 'clusters', clusterId, 'vsphere.json')).mode & 0o777).toBe(0o600);

    const leader = await addNode(admin, clusterId, 'vs-m1', 'master');
    const other = await addNode(admin, clusterId, 'vs-m2', 'master');
    const worker = await addNode(admin, clusterId, 'vs-w1', 'worker');
    expect(leader.config.addons.vsphere).toEqual({ storagePolicy: 'gold' });
    // Every kubelet, workers included, leaves node initialization to the CPI.
    for (const node of [leader, worker]) expect(node.config.kubernetes.cloudProvider).toBe('external');
    for (const [node, ip] of [
      [leader, '10.60.0.11'],
      [other, '10.60.0.12'],
      [worker, '10.60.0.21'],
    ] as const)
      await node.client.register(registration(node.name, ip));
    const status = async (call: Promise<unknown>) =>
      call.then(
        () => 200,
        (error: unknown) => (error instanceof ControllerRequestError ? error.context.status : error),
      );

    expect(await status(leader.client.vsphere())).toBe(403); // no lease yet
    expect((await leader.client.claimLeader({})).granted).toBe(true);
    expect(await leader.client.vsphere()).toEqual(CREDENTIALS);
    expect(await status(other.client.vsphere())).toBe(403);
    expect(await status(worker.client.vsphere())).toBe(403);

    const show = await cli('cluster', 'show', '--cluster', 'vs', '--json');
    const clusterStatus = await cli('status', '--cluster', 'vs', '--json');
    const guestinfo = await cli('node-config', '--cluster', 'vs', '--name', 'vs-m3', '--role', 'master', '--format', 'json');
    for (const output of [set.stdout, set.stderr, show.stdout, clusterStatus.stdout, guestinfo.stdout, proc.stderr()])
      expect(output).not.toContain(PASSWORD);
    expect(show.stdout).not.toContain(CREDENTIALS.username);
    // state.json and its journal: the connection lives only in its own 0600 file.
    for (const file of readdirSync(data.dir).filter((f) => f.startsWith('state.')))
      expect(readFileSync(path.join(data.dir, file), 'utf8')).not.toContain(PASSWORD);
  });

  it('refuses bad input naming the flag (exit 2) and echoes no password', async () => {
    const passwordFile = path.join(data.dir, '..', `vsphere-password-bad-${process.pid}`);
    writeFileSync(passwordFile, PASSWORD, { mode: 0o600 });
    const result = await cli(
      'cluster',
      'vsphere',
      '--cluster',
      'vs',
      '--server',
      'bad host',
      '--username',
      'u',
      '--password-file',
      passwordFile,
      '--datacenter',
      'DC0',
    );
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('--server: expected the vCenter host name');
    expect(result.stderr).not.toContain(PASSWORD);
  });

  function writeSpec(spec: unknown): string {
    const file = path.join(data.dir, '..', `vsphere-spec-${process.pid}.json`);
    writeFileSync(file, JSON.stringify(spec));
    return file;
  }
});

describe('the addons phase with vSphere configured', () => {
  it('applies the CPI and CSI with their credentials through stdin, then the default StorageClass; the password reaches no log, file, argv or phase output', async () => {
    const node = await createStandinNode();
    try {
      await node.host.writeFile('/etc/kubernetes/admin.conf', 'apiVersion: v1\nkind: Config\n', { mode: 0o600 });
      cpSync(path.join(REPO, 'test/fixtures/addons-subset'), node.host.file('/opt/pke/addons'), { recursive: true });
      const config = agentConfig({ nodeName: 'cp-1', addons: { cni: 'calico', vsphere: { storagePolicy: 'gold' } } });
      const ctx = phaseContext(node, config, fakeController({ vsphere: CREDENTIALS }), { elect: { leader: true, epoch: 1 } });
      const output = await createAddonsPhase({ rolloutTimeoutSeconds: 30 }).run(ctx);
      expect(output.addons.map((a) => a.name)).toEqual(['calico', 'vsphere-cpi', 'vsphere-csi']);

      const calls = node.calls('kubectl').map((call) => call.argv.join(' ').replaceAll(node.root, ''));
      expect(calls.filter((c) => c.endsWith('apply -f -'))).toHaveLength(2);
      expect(calls.filter((c) => c.includes('rollout status')).map((c) => c.split(' ').slice(-2, -1)[0])).toEqual([
        'daemonset/calico-node',
        'deployment/calico-kube-controllers',
        'daemonset/vsphere-cloud-controller-manager',
        'deployment/vsphere-csi-controller',
        'daemonset/vsphere-csi-node',
      ]);
      expect(calls.at(-1)).toBe(
        '--kubeconfig /etc/kubernetes/admin.conf apply -f /etc/kubernetes/pke/addons/vsphere-csi/zz-pke-storage-class.yaml',
      );
      const storageClass = readFileSync(node.host.file('/etc/kubernetes/pke/addons/vsphere-csi/zz-pke-storage-class.yaml'), 'utf8');
      expect(storageClass).toContain('storageclass.kubernetes.io/is-default-class: "true"');
      expect(storageClass).toContain('storagepolicyname: gold');

      // What the cluster (the stand-in's record of applied objects) got: both Secrets and the CPI config.
      const applied = readFileSync(node.host.file('/var/lib/pke-standins/kubectl-applied.json'), 'utf8');
      for (const key of [
        'Secret/kube-system/vsphere-cloud-secret',
        'ConfigMap/kube-system/vsphere-cloud-config',
        'Secret/vmware-system-csi/vsphere-config-secret',
      ])
        expect(applied).toContain(key);

      expect(JSON.stringify(node.logLines)).not.toContain(PASSWORD);
      expect(JSON.stringify(output)).not.toContain(PASSWORD);
      expect(JSON.stringify(node.calls())).not.toContain(PASSWORD);
      expect(allText(node.host.file('/etc/kubernetes'))).not.toContain(PASSWORD);
    } finally {
      await node.cleanup();
    }
  });

  it('fails before applying anything when the controller has no vCenter connection', async () => {
    const node = await createStandinNode();
    try {
      await node.host.writeFile('/etc/kubernetes/admin.conf', 'apiVersion: v1\nkind: Config\n', { mode: 0o600 });
      cpSync(path.join(REPO, 'test/fixtures/addons-subset'), node.host.file('/opt/pke/addons'), { recursive: true });
      const config = agentConfig({ nodeName: 'cp-1', addons: { cni: 'calico', vsphere: {} } });
      const ctx = phaseContext(node, config, fakeController({}), { elect: { leader: true, epoch: 1 } });
      await expect(createAddonsPhase().run(ctx)).rejects.toThrow(
        'add-ons vsphere-cpi and vsphere-csi: could not get the vCenter connection from the controller',
      );
      expect(node.calls('kubectl')).toEqual([]);
    } finally {
      await node.cleanup();
    }
  });

  it('runs the kubelet with --cloud-provider=external and a providerID from the BIOS UUID when the config says so, and only then', () => {
    const node = {
      nodeName: 'cp-1',
      primaryIp: '10.10.0.11',
      interface: 'eth0',
      ips: ['10.10.0.11'],
      biosUuid: '4213e5a7-1c2b-4d3e-8f90-a1b2c3d4e5f6',
    };
    const kubeletArgs = (cloudProvider?: 'external') => {
      const config = agentConfig({ kubernetes: { version: '1.31.2', ...(cloudProvider ? { cloudProvider } : {}) } });
      const init = YAML.parseAllDocuments(
        renderInitConfig({ config, node, bootstrapToken: { token: 'abcdef.0123456789abcdef', ttlSeconds: 7200 } }),
      ).map((d) => d.toJS());
      return init.find((doc) => doc.kind === 'InitConfiguration').nodeRegistration.kubeletExtraArgs as { name: string; value: string }[];
    };
    expect(kubeletArgs('external')).toContainEqual({ name: 'cloud-provider', value: 'external' });
    expect(kubeletArgs('external')).toContainEqual({ name: 'provider-id', value: 'vsphere://4213e5a7-1c2b-4d3e-8f90-a1b2c3d4e5f6' });
    expect(kubeletArgs().some((arg) => arg.name === 'cloud-provider' || arg.name === 'provider-id')).toBe(false);
  });

  it('writes csi-vsphere.conf with quotes and backslashes escaped', () => {
    const conf = (renderCsiConfig(CREDENTIALS, 'prod-a1b2').match(/csi-vsphere\.conf: \|\n([\s\S]*)/)?.[1] ?? '').replace(/^ {4}/gm, '');
    expect(conf).toContain('password = "S3cret\\"pass\\\\word-7f3a9c"');
    expect(conf).toContain('[VirtualCenter "vcenter.example.net"]');
    expect(conf).toContain('cluster-id = "prod-a1b2"');
  });
});
