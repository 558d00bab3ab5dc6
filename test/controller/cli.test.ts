import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterListSchema, clusterStatusSchema, clusterSummarySchema } from '../../agent/protocol/api.ts';
import { AGENT_ENTRY, scratchDir } from '../helpers/cli.ts';
import { killProcess, spawnController, type ControllerProcess } from './helpers.ts';

let proc: ControllerProcess;
const data = scratchDir('cli');
let clusterId: string;

async function cli(...args: string[]) {
  const result = await execa(process.execPath, [AGENT_ENTRY, 'controller', ...args], { reject: false, timeout: 30_000 });
  return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** A controller command with --url and --data-dir of the running controller. */
const connected = (...args: string[]) => cli(...args, '--url', proc.url, '--data-dir', data.dir);

beforeAll(async () => {
  proc = await spawnController(data.dir);
  const created = await connected(
    'cluster',
    'create',
    '--name',
    'prod',
    '--kubernetes-version',
    '1.31.2',
    '--vip',
    '10.50.0.10',
    '--pool',
    'general',
    '--pool',
    'gpu',
    '--token-ttl',
    '48h',
    '--json',
  );
  expect(created.exitCode).toBe(0);
  clusterId = clusterSummarySchema.parse(JSON.parse(created.stdout)).id;
});

afterAll(async () => {
  await killProcess(proc?.child, 'SIGTERM');
  data.remove();
});

describe('controller CLI', () => {
  it('prints where it listens, the CA pin and the admin token file', () => {
    expect(proc.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('creates, lists and shows clusters', async () => {
    expect(clusterId).toMatch(/^prod-[a-z0-9]{5}$/);
    const [list, show, listJson] = await Promise.all([
      connected('cluster', 'list'),
      connected('cluster', 'show', '--cluster', 'prod'),
      connected('cluster', 'list', '--json'),
    ]);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(
        `^ID\\s+NAME\\s+KUBERNETES\\s+ENDPOINT\\s+NODES\\s+INITIALIZED\\n${clusterId}\\s+prod\\s+1\\.31\\.2\\s+10\\.50\\.0\\.10:6443\\s+0\\s+no$`,
      ),
    );
    expect(show.stdout).toContain(`id                  ${clusterId}`);
    expect(show.stdout).toContain('pools               general, gpu');
    expect(show.stdout).toContain('node token TTL      172800 s');
    expect(show.stdout).toMatch(/CA cert hash\s+sha256:[a-f0-9]{64}/);
    expect(clusterListSchema.shape.clusters.parse(JSON.parse(listJson.stdout))).toHaveLength(1);
  });

  it('renders node configs for govc and json, keeping the token out of the log', async () => {
    const [govc, asJson] = await Promise.all([
      connected('node-config', '--cluster', 'prod', '--name', 'prod-w1', '--role', 'worker', '--pool', 'gpu'),
      connected('node-config', '--cluster', clusterId, '--name', 'prod-m1', '--role', 'master', '--format', 'json'),
    ]);
    expect(govc.exitCode).toBe(0);
    expect(govc.stdout).toMatch(
      /^govc vm\.change -vm prod-w1 -e guestinfo\.metadata=\S+ -e guestinfo\.metadata\.encoding=gzip\+base64 -e guestinfo\.userdata=\S+ -e guestinfo\.userdata\.encoding=gzip\+base64 -e guestinfo\.pke\.config=\S+ -e guestinfo\.pke\.config\.encoding=gzip\+base64$/,
    );
    expect(govc.stderr).toContain('node=prod-w1');
    expect(govc.stderr).not.toMatch(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./);
    expect(Object.keys(JSON.parse(asJson.stdout))).toContain('guestinfo.pke.config');
  });

  it('shows status as a table and as JSON, and revokes a node', async () => {
    const revoked = await connected('node', 'revoke', '--cluster', 'prod', '--name', 'prod-w1');
    expect(revoked.exitCode).toBe(0);
    expect(revoked.stdout).toMatch(/^revoked \S+/);
    const [table, asJson] = await Promise.all([
      connected('status', '--cluster', 'prod'),
      connected('status', '--cluster', 'prod', '--json'),
    ]);
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toContain(`cluster prod (${clusterId})`);
    expect(table.stdout).toContain('join slot free');
    expect(table.stdout).toMatch(/NODE\s+ROLE\s+POOL\s+STATE\s+PRIMARY IP\s+PHASE\s+JOINED AT\s+READY AT\s+CERTS EXPIRE\s+LAST ERROR/);
    expect(table.stdout).toMatch(/prod-w1\s+worker\s+gpu\s+revoked/);
    const status = clusterStatusSchema.parse(JSON.parse(asJson.stdout));
    expect(status.nodes.map((n) => [n.name, n.state])).toEqual(
      expect.arrayContaining([
        ['prod-w1', 'revoked'],
        ['prod-m1', 'pending'],
      ]),
    );
  });

  it('removes a node step by step, one log line a step, and shows it removed', async () => {
    const removed = await connected('node', 'remove', '--cluster', 'prod', '--name', 'prod-m1', '--timeout', '2m');
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(removed.stdout.trim()).toBe('node prod-m1: removed');
    // A node that never joined: nothing to drain, no etcd member, no VIP; its tokens go.
    expect(removed.stderr).toMatch(/node\.remove\.step.*step=quorum.*state=done.*note="the cluster was never initialized: no etcd yet"/);
    expect(removed.stderr).toMatch(/node\.remove\.step.*step=revoke.*state=done/);
    const table = await connected('status', '--cluster', 'prod');
    expect(table.stdout).toMatch(/prod-m1\s+master\s+control-plane\s+removed/);
    const missing = await connected('node', 'remove', '--cluster', 'prod', '--name', 'prod-m9');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`404 not-found: cluster ${clusterId} has no node prod-m9`);
  });
});

describe('controller CLI input errors (exit 2, the flag named, nothing written)', () => {
  it.each([
    [['cluster', 'create', '--name', 'bad', '--kubernetes-version', '1.31.2', '--vip', '300.1.1.1'], '--vip'],
    [['cluster', 'create', '--name', 'bad', '--vip', '10.0.0.1'], '--kubernetes-version is required'],
    [['cluster', 'create', '--name', 'bad', '--kubernetes-version', '1.31.2', '--vip', '10.0.0.1', '--token-ttl', '5x'], '--token-ttl'],
    [['cluster', 'create', '--name', 'Bad_Name', '--kubernetes-version', '1.31.2', '--vip', '10.0.0.1'], '--name'],
    [['node-config', '--cluster', 'prod', '--name', 'w9', '--role', 'worker', '--pool', 'nope'], '--pool'],
    [['node-config', '--cluster', 'prod', '--name', 'W_9', '--role', 'worker'], '--name'],
    [['node', 'remove', '--cluster', 'prod', '--name', 'W_9'], '--name: expected a lower-case host name'],
    [['node', 'remove', '--cluster', 'prod', '--name', 'prod-w1', '--timeout', '5x'], '--timeout: \\"5x\\" is not a duration'],
    [['node', 'remove', '--cluster', 'prod', '--name', 'prod-w1', '--timeout', '2d'], '--timeout: at most 24 h'],
    [['node', 'replace', '--cluster', 'prod', '--name', 'prod-w1', '--ready-timeout', '5x'], '--ready-timeout: \\"5x\\" is not a duration'],
    [
      ['node', 'replace', '--cluster', 'prod', '--name', 'prod-w1'],
      'cluster prod: the controller does not provision its VMs; without provisioning, replace is `node remove` then a new VM made with `node-config`',
    ],
  ])('%j', async (args, expected) => {
    const result = await connected(...args);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(expected);
  });

  it('names --role when it is not master or worker', async () => {
    const result = await connected('node-config', '--cluster', 'prod', '--name', 'w9', '--role', 'boss');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/role/);
  });

  it('names --listen and --data-dir when they are wrong', async () => {
    const [listen, dataDir] = await Promise.all([
      cli('serve', '--listen', 'nope', '--data-dir', data.dir),
      cli('cluster', 'list', '--url', proc.url, '--data-dir', '/nonexistent/pke'),
    ]);
    expect(listen.exitCode).toBe(2);
    expect(listen.stderr).toContain('--listen');
    expect(dataDir.exitCode).toBe(2);
    expect(dataDir.stderr).toContain('--data-dir');
  });

  it('left no cluster or node behind from the refused commands', async () => {
    const list = clusterListSchema.shape.clusters.parse(JSON.parse((await connected('cluster', 'list', '--json')).stdout));
    expect(list.map((c) => c.name)).toEqual(['prod']);
    const status = clusterStatusSchema.parse(JSON.parse((await connected('status', '--cluster', 'prod', '--json')).stdout));
    expect(status.nodes.map((n) => n.name).sort()).toEqual(['prod-m1', 'prod-w1']);
  });
});
