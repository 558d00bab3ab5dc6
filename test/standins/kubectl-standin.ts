// STAND-IN for kubectl, for tests and the lab only. Acts out:
//   kubectl --kubeconfig F [--request-timeout=T] get node NAME -o jsonpath={...Ready...status}
//   kubectl --kubeconfig F apply -f FILE...       (recorded and parsed; objects applied before are `unchanged`;
//                                                 `-f -` reads stdin, which the call log does not record)
//   kubectl --kubeconfig F -n NS rollout status KIND/NAME --timeout=T
//                                                 (succeeds, unless PKE_STANDIN_KUBECTL_ROLLOUT_FAIL names
//                                                 NAME (comma-separated list): then fails as a timed-out rollout does)
// Like kubectl it talks to the kubeconfig's server (the VIP) with the kubeconfig's client
// certificate, and fails as kubectl does when that server does not answer. The node it knows is
// the one under PKE_ROOT: it exists once kubeadm wrote kubelet.conf (its client certificate names
// it), and it is Ready when the server's /readyz says ok; otherwise NotReady.
// The YAML library, HTTPS and node:crypto load where a command uses them: `rollout status`, run
// for every workload, needs none of them, and they would be most of its start-up CPU.
import { existsSync, readFileSync } from 'node:fs';
import { STATE_DIR, exitWith, readNodeFile, recordCall, writeNodeFile } from './standin-common.ts';

const APPLIED_OBJECTS = `${STATE_DIR}/kubectl-applied.json`;
const READY_JSONPATH = '{.status.conditions[?(@.type=="Ready")].status}';

const argv = process.argv.slice(2);
recordCall('kubectl', argv);

const options = new Map<string, string>();
/** Every `-f FILE` (kubectl takes several). */
const files: string[] = [];
const words: string[] = [];
for (let i = 0; i < argv.length; i += 1) {
  const arg = argv[i] ?? '';
  if (!arg.startsWith('-')) {
    words.push(arg);
    continue;
  }
  const [name = '', inline] = arg.replace(/^--?/, '').split(/=(.*)/s);
  const value = inline ?? argv[(i += 1)] ?? '';
  options.set(name, value);
  if (name === 'f' || name === 'filename') files.push(value);
}

const [verb, ...objects] = words;
if (verb === 'get' && objects[0] === 'node' && objects[1]) await getNode(objects[1]);
else if (verb === 'apply') await apply();
else if (verb === 'rollout' && objects[0] === 'status' && objects[1]) rolloutStatus(objects[1]);
else exitWith('error: kubectl stand-in acts out only `get node NAME -o jsonpath=...`, `apply -f FILE` and `rollout status KIND/NAME`', 1);

async function getNode(name: string): Promise<void> {
  const output = options.get('o') ?? options.get('output') ?? '';
  if (output !== `jsonpath=${READY_JSONPATH}`) exitWith(`error: kubectl stand-in answers only -o jsonpath=${READY_JSONPATH}`, 1);
  const { dialError, httpsRequest } = await import('./standin-https.ts');
  const kubeconfig = await loadKubeconfig();
  let readyz;
  try {
    readyz = await httpsRequest(`${kubeconfig.server}/readyz`, { ca: kubeconfig.ca, cert: kubeconfig.cert, key: kubeconfig.key, timeoutMs: 5_000 });
  } catch (error) {
    const { host } = new URL(kubeconfig.server);
    const reason = dialError(kubeconfig.server, error);
    exitWith(reason.includes('refused') ? `The connection to the server ${host} was refused - did you specify the right host or port?` : `Unable to connect to the server: ${reason}`, 1);
  }
  if ((await localNodeName()) !== name) exitWith(`Error from server (NotFound): nodes "${name}" not found`, 1);
  process.stdout.write(readyz.status === 200 ? 'True' : 'False');
}

async function apply(): Promise<void> {
  if (files.length === 0) exitWith('error: must specify one of -f and -k', 1);
  requireKubeconfig();
  const { parseAllDocuments } = await import('yaml');
  // What the "cluster" holds: each object's key and its last applied JSON, so a repeat is `unchanged`.
  const stored = readNodeFile(APPLIED_OBJECTS);
  const applied = new Map<string, string>(stored ? (JSON.parse(stored) as [string, string][]) : []);
  for (const file of files) {
    if (file !== '-' && !existsSync(file)) exitWith(`error: the path "${file}" does not exist`, 1);
    for (const doc of parseAllDocuments(readFileSync(file === '-' ? 0 : file, 'utf8'))) {
      if (doc.errors.length > 0) exitWith(`error: error parsing ${file}: ${doc.errors[0]?.message}`, 1);
      const object = doc.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } } | null;
      if (object === null) continue;
      if (!object.apiVersion || !object.kind || !object.metadata?.name) exitWith(`error: error validating "${file}": apiVersion, kind and metadata.name are required`, 1);
      const key = `${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
      const json = JSON.stringify(object);
      const verb = !applied.has(key) ? 'created' : applied.get(key) === json ? 'unchanged' : 'configured';
      applied.set(key, json);
      process.stdout.write(`${object.kind.toLowerCase()}/${object.metadata.name} ${verb}\n`);
    }
  }
  writeNodeFile(APPLIED_OBJECTS, JSON.stringify([...applied]));
}

function rolloutStatus(target: string): void {
  requireKubeconfig();
  const [kind = '', name = ''] = target.split('/');
  const failing = (process.env.PKE_STANDIN_KUBECTL_ROLLOUT_FAIL ?? '').split(',').map((n) => n.trim());
  if (failing.includes(name)) {
    exitWith(`error: timed out waiting for the condition (stand-in: PKE_STANDIN_KUBECTL_ROLLOUT_FAIL names ${name})`, 1);
  }
  const what = kind === 'daemonset' ? 'daemon set' : kind;
  process.stdout.write(`${what} "${name}" successfully rolled out\n`);
}

function requireKubeconfig(): void {
  const file = options.get('kubeconfig') ?? process.env.KUBECONFIG;
  if (!file || !existsSync(file)) exitWith(`error: stat ${file ?? '~/.kube/config'}: no such file or directory`, 1);
}

interface Kubeconfig {
  server: string;
  ca: string;
  cert: string;
  key: string;
}

async function loadKubeconfig(): Promise<Kubeconfig> {
  const { parse } = await import('yaml');
  const file = options.get('kubeconfig') ?? process.env.KUBECONFIG;
  if (!file || !existsSync(file)) exitWith(`error: stat ${file ?? '~/.kube/config'}: no such file or directory`, 1);
  const config = parse(readFileSync(file, 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
    users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
  };
  const cluster = config.clusters[0]?.cluster;
  const user = config.users[0]?.user;
  if (!cluster || !user) exitWith(`error: ${file} has no cluster or user`, 1);
  const decode = (value: string) => Buffer.from(value, 'base64').toString('utf8');
  return { server: cluster.server, ca: decode(cluster['certificate-authority-data']), cert: decode(user['client-certificate-data']), key: decode(user['client-key-data']) };
}

/** The node kubeadm registered here: the CN of kubelet.conf's client certificate is system:node:NAME. */
async function localNodeName(): Promise<string | undefined> {
  const { parse } = await import('yaml');
  const { X509Certificate } = await import('node:crypto');
  const kubeletConf = readNodeFile('/etc/kubernetes/kubelet.conf');
  if (!kubeletConf) return undefined;
  const certData = (parse(kubeletConf) as { users: { user: { 'client-certificate-data': string } }[] }).users[0]?.user['client-certificate-data'];
  if (!certData) return undefined;
  const subject = new X509Certificate(Buffer.from(certData, 'base64')).subject;
  return /CN=system:node:(\S+)/.exec(subject)?.[1];
}
