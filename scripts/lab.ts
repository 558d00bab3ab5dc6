// npm run lab [-- --masters N --workers M --failover --keep --standins --ha --vsphere]: a whole cluster
// bootstrapped on this machine, one network namespace per VM, real controller, agents and
// keepalived; by default real kubeadm, kubelet, containerd, etcd and control plane too. With
// --ha, three controller replicas on a three-member etcd cluster, one of them SIGKILLed once a
// node holds the leader lease, the formation going on through the other two.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { execa } from 'execa';
import { ensureBuilt } from './ensure-built.ts';
import { realBinaries } from './kubernetes/real-binaries.ts';
import { NEWEST_RELEASE, findRelease, type KubernetesRelease } from './kubernetes/releases.ts';
import { Lab, REPO, type LabNode } from './lab/cluster.ts';
import { namespacesAvailable } from './lab/network.ts';
import { ProgressView } from './lab/progress.ts';

const { values } = parseArgs({
  options: {
    masters: { type: 'string', default: '3' },
    workers: { type: 'string', default: '2' },
    failover: { type: 'boolean', default: false },
    ha: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    standins: { type: 'boolean', default: false },
    vsphere: { type: 'boolean', default: false },
    'kubernetes-version': { type: 'string' },
    prefix: { type: 'string', default: 'pke-lab-' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    `usage: npm run lab [-- --masters N --workers M --failover --keep --standins --ha --vsphere --kubernetes-version ${NEWEST_RELEASE.version} --prefix pke-lab-]`,
  );
  process.exit(0);
}
const masters = Number(values.masters);
const workers = Number(values.workers);
if (!Number.isInteger(masters) || masters < 1 || masters > 7) fail('--masters must be a whole number from 1 to 7', 2);
if (!Number.isInteger(workers) || workers < 0 || workers > 50) fail('--workers must be a whole number from 0 to 50', 2);
// Namespaces, cgroups and the work directory are named with it, so two labs with different prefixes run side by side.
if (!/^[a-z][a-z0-9-]{0,14}-$/.test(values.prefix))
  fail('--prefix must be lowercase letters, digits and dashes, end with a dash, at most 16 characters', 2);

if (values.ha && values.vsphere) fail('--ha and --vsphere do not go together: the vSphere lab runs one controller', 2);
// --vsphere provisions through the vCenter simulator and boots the VMs on the stand-in tier.
const real = values.standins || values.vsphere ? undefined : realRelease(values['kubernetes-version'] ?? NEWEST_RELEASE.version);

const available = await namespacesAvailable();
if (!available.ok) fail(`the lab needs root and network namespaces: ${available.reason}. Run it as root (sudo npm run lab).`, 1);

const view = new ProgressView();
view.note('building dist/pke-agent (when older than its sources)');
const executable = await ensureBuilt();
if (real) await ensureRealBinaries(real);

let lab: Lab | undefined;
let cleaning = false;
async function cleanup(code: number): Promise<never> {
  if (cleaning) process.exit(code);
  cleaning = true;
  view.stop();
  if (lab) {
    console.log(
      values.keep ? `\nstopping the lab; files kept in ${lab.options.workDir}` : '\nstopping the lab and removing its namespaces',
    );
    await lab.destroy({ keepFiles: values.keep }).catch((error: unknown) => console.error(`cleanup: ${String(error)}`));
  }
  process.exit(code);
}
process.on('SIGINT', () => void cleanup(130));
process.on('SIGTERM', () => void cleanup(143));

try {
  const started = Date.now();
  view.note(`creating ${masters} control-plane and ${workers} worker VMs in network namespaces, a controller, and the cluster`);
  lab = await Lab.create(
    {
      prefix: values.prefix,
      workDir: path.join(REPO, '.cache', values.prefix.slice(0, -1)),
      executable,
      masters,
      workers,
      kubernetesVersion: values['kubernetes-version'],
      real,
      ha: values.ha,
      vsphere: values.vsphere,
    },
    (text) => view.note(text),
  );
  if (values.vsphere) {
    await vsphereLab(lab, started);
    await cleanup(0);
  }
  view.note(`controller ${lab.controllerUrls.join(', ')}, VIP ${lab.network.vip}; powering on every VM`);
  for (const node of lab.nodes) view.add(node.name, node.role);
  const bootStarted = Date.now();
  const formation = Promise.all(lab.nodes.map((node) => boot(lab!, node)));
  const killed = values.ha ? killReplicaOnceLeased(lab, formation) : undefined;
  const results = await formation;
  view.stop();
  const seconds = ((Date.now() - bootStarted) / 1000).toFixed(1);
  console.log('');
  const replicaKilled = await killed;
  if (values.ha) {
    console.log(replicaKilled ?? 'no replica was killed: the formation ended before a node held the lease');
    for (const { replica, output } of await lab.eachReplicaCli(['status', '--cluster', lab.clusterName]))
      console.log(`\ncontroller status through the replica on ${replica}:\n${output}`);
  } else console.log(await lab.controllerCli(['status', '--cluster', lab.clusterName]));
  await writeTimeline(lab);
  const failed = results.filter((code) => code !== 0).length;
  if (failed > 0) {
    console.log(`\n${failed} node(s) failed; logs in ${lab.options.workDir}`);
    const broken = lab.nodes[results.findIndex((code) => code !== 0)]!;
    console.log(await statusText(lab, broken));
    await cleanup(1);
  }
  console.log(
    `\nall ${lab.nodes.length} nodes ready in ${seconds} s (lab set-up included: ${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
  const holder = await lab.vipHolder();
  console.log(`VIP ${lab.network.vip} is on ${holder?.name ?? 'no node'}\n`);
  console.log(`pke-agent status on ${lab.nodes[0]!.name}:\n`);
  console.log(await statusText(lab, lab.nodes[0]!));
  if (real) {
    const master = lab.nodes.find((n) => n.role === 'master')!;
    console.log(`kubectl get nodes -o wide (on ${master.name}):\n`);
    console.log(await lab.kubectl(master, ['get', 'nodes', '-o', 'wide']));
    console.log(`kubectl get pods -A -o wide (on ${master.name}):\n`);
    console.log(await lab.kubectl(master, ['get', 'pods', '-A', '-o', 'wide']));
  }

  if (values.failover) await failover(lab);
  await cleanup(0);
} catch (error) {
  view.stop();
  console.error(`lab: ${error instanceof Error ? error.message : String(error)}`);
  if (lab) await writeTimeline(lab);
  await cleanup(1);
}

/** A pinned release (scripts/kubernetes/releases.ts): the real tier runs only what was built. */
function realRelease(version: string): KubernetesRelease {
  const release = findRelease(version);
  if (!release)
    fail(
      `--kubernetes-version ${version}: the real tier runs the pinned releases only (see scripts/kubernetes/releases.ts), or use --standins`,
      2,
    );
  return release;
}

/** The real binaries and images, built from their Go modules when missing (a cold build takes minutes). */
async function ensureRealBinaries(release: KubernetesRelease): Promise<void> {
  if (realBinaries(release, ['kubeadm', 'kubelet', 'kubectl', 'etcd']).available) return;
  view.note(`building Kubernetes v${release.version} from its Go modules (scripts/kubernetes/build.ts; cold: about 10 minutes)`);
  const args = release === NEWEST_RELEASE ? [] : ['--release', release.version];
  const result = await execa(process.execPath, [path.join(REPO, 'scripts/kubernetes/build.ts'), ...args], {
    reject: false,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.exitCode !== 0) fail(`building Kubernetes v${release.version} failed (above); --standins runs the lab without it`, 1);
}

/**
 * The formation's timeline, drawn by `controller timeline` as an operator would, beside the lab's
 * work directory (which cleanup removes): every run leaves one, failed runs too.
 */
async function writeTimeline(lab: Lab): Promise<void> {
  const file = path.join(REPO, '.cache', `${values.prefix}formation.svg`);
  try {
    writeFileSync(file, await lab.controllerCli(['timeline', '--cluster', lab.clusterName]));
    console.log(`\nformation timeline: ${file}`);
  } catch (error) {
    console.error(`lab: could not draw the formation timeline: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function boot(lab: Lab, node: LabNode): Promise<number> {
  const child = lab.startNode(node, (line) => {
    if (line.event === 'phase.start' && line.phase) view.update(node.name, { phase: line.phase, state: 'running', detail: '' });
    else if (line.event === 'phase.done' && line.phase) view.update(node.name, { phase: line.phase, state: 'running', detail: 'done' });
    else if (line.event === 'phase.failed') view.update(node.name, { state: 'running', detail: String(line.error ?? '').slice(0, 80) });
    else if (line.event === 'elect.waiting') view.update(node.name, { detail: `waiting for leader ${String(line.leader)}` });
    else if (line.event === 'elect.leader') view.update(node.name, { detail: 'leader' });
  });
  const result = await child;
  view.update(node.name, {
    state: result.exitCode === 0 ? 'done' : 'failed',
    phase: result.exitCode === 0 ? 'ready' : 'failed',
    endedAt: Date.now(),
  });
  return result.exitCode ?? 1;
}

/** Boots what the controller provisioned, shows the VMs' ExtraConfig after formation, scales the workers up by two and down by one. */
async function vsphereLab(lab: Lab, started: number): Promise<void> {
  const exits = new Map<string, Promise<number>>();
  const sync = async () => {
    const { booted, removed } = await lab.syncVsphereVms((node) => {
      view.add(node.name, node.role);
      exits.set(node.name, boot(lab, node));
    });
    for (const node of booted) view.note(`${node.name}: the simulator reports it powered on; booting it at ${node.host.ip}`);
    for (const name of removed) view.note(`${name}: destroyed in vSphere; its namespace is gone`);
  };
  const readyCount = async () => {
    const status = clusterStatusOf(await lab.controllerCli(['status', '--cluster', lab.clusterName, '--json']));
    return status.nodes.filter((n) => n.state === 'ready').length;
  };
  const settle = async (ready: number, what: string) => {
    for (let i = 0; i < 600; i++) {
      await sync();
      if ((await readyCount()) === ready) return;
      if ([...exits.values()].length > 0) {
        const codes = await Promise.all([...exits.values()].map((p) => Promise.race([p, Promise.resolve(0)])));
        if (codes.some((code) => code !== 0)) throw new Error(`a node failed while waiting for ${what}; logs in ${lab.options.workDir}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${what}: not reached within 5 minutes`);
  };
  view.note(
    `controller ${lab.controllerUrl}, vCenter simulator https://${lab.vsphere!.host}:${lab.vsphere!.port}/sdk; the controller provisions the VMs`,
  );
  const provisionStarted = Date.now();
  await settle(masters + workers, 'every provisioned node ready');
  view.stop();
  const seconds = ((Date.now() - provisionStarted) / 1000).toFixed(1);
  console.log(`\n${await lab.controllerCli(['status', '--cluster', lab.clusterName])}`);
  console.log(
    `\nall ${masters + workers} provisioned nodes ready ${seconds} s after --provision (lab set-up included: ${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
  console.log("\nguestinfo in each VM's ExtraConfig, read through the vSphere API (what an admin with govc sees):");
  for (const node of lab.nodes) {
    const extra = await lab.vsphere!.extraConfig(node.name);
    const show = (key: string) => JSON.stringify(extra[key] ?? '(unset)');
    console.log(`  ${node.name}: guestinfo.pke.config=${show('guestinfo.pke.config')} guestinfo.userdata=${show('guestinfo.userdata')}`);
  }
  for (const [size, ready] of [
    [workers + 2, masters + workers + 2],
    [workers + 1, masters + workers + 1],
  ] as const) {
    console.log(`\npool scale --pool workers --size ${size}`);
    const scaleStarted = Date.now();
    await lab.controllerCli(['pool', 'scale', '--cluster', lab.clusterName, '--pool', 'workers', '--size', String(size)]);
    await settle(ready, `workers at ${size}`);
    for (let i = 0; i < 60 && lab.nodes.length !== ready; i++) {
      await sync();
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(
      `workers at ${size} in ${((Date.now() - scaleStarted) / 1000).toFixed(1)} s; lab VMs: ${lab.nodes.map((n) => n.name).join(', ')}`,
    );
  }
  console.log(`\n${await lab.controllerCli(['status', '--cluster', lab.clusterName])}`);
}

function clusterStatusOf(text: string): { nodes: { name: string; state: string }[] } {
  return JSON.parse(text) as { nodes: { name: string; state: string }[] };
}

async function statusText(lab: Lab, node: LabNode): Promise<string> {
  const result = await lab.agentCommand(node, ['status', '--probe']);
  return result.stdout + result.stderr;
}

/** SIGKILLs the first controller replica (every node config's first URL) as soon as a node holds the leader lease. */
async function killReplicaOnceLeased(lab: Lab, formation: Promise<unknown>): Promise<string | undefined> {
  let done = false;
  void formation.finally(() => {
    done = true;
  });
  while (!done) {
    const status = (await lab.clusterStatus().catch(() => undefined)) as { leader?: { holder?: string } } | undefined;
    const holder = status?.leader?.holder;
    if (holder) {
      const name = await lab.killReplica(0);
      view.note(`SIGKILLed the controller replica on ${name} while ${holder} held the lease`);
      return `controller replica on ${name} SIGKILLed mid-formation, while ${holder} held the leader lease`;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

async function failover(lab: Lab): Promise<void> {
  const holder = await lab.vipHolder();
  if (!holder) throw new Error('failover: no node holds the VIP');
  console.log(`\nfailover: stopping the API server${lab.tier === 'real' ? '' : ' stand-in'} on ${holder.name}, the VIP holder`);
  const stoppedAt = Date.now();
  if (!lab.stopApiServer(holder)) throw new Error(`failover: no API server pid file on ${holder.name}`);
  for (let i = 0; i < 300; i++) {
    const now = await lab.vipHolder();
    if (now && now !== holder) {
      console.log(`failover: the VIP moved from ${holder.name} to ${now.name} in ${((Date.now() - stoppedAt) / 1000).toFixed(2)} s`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('failover: the VIP did not move within 15 s');
}

function fail(message: string, code: number): never {
  console.error(`lab: ${message}`);
  process.exit(code);
}
