// STAND-IN for kubectl, for tests and the lab only. Acts out:
//   kubectl --kubeconfig F [--request-timeout=T] get node NAME -o jsonpath={...Ready...status}
//   kubectl --kubeconfig F apply -f FILE...       (recorded and parsed; the add-ons will use it)
// Like kubectl it talks to the kubeconfig's server (the VIP) with the kubeconfig's client
// certificate, and fails as kubectl does when that server does not answer. The node it knows is
// the one under PKE_ROOT: it exists once kubeadm wrote kubelet.conf (its client certificate names
// it), and it is Ready when the server's /readyz says ok; otherwise NotReady.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { exitWith, readNodeFile, recordCall } from './standin-common.ts';
import { dialError, httpsRequest } from './standin-https.ts';

const READY_JSONPATH = '{.status.conditions[?(@.type=="Ready")].status}';

const argv = process.argv.slice(2);
recordCall('kubectl', argv);

const options = new Map<string, string>();
const words: string[] = [];
for (let i = 0; i < argv.length; i += 1) {
  const arg = argv[i] ?? '';
  if (!arg.startsWith('-')) {
    words.push(arg);
    continue;
  }
  const [name = '', inline] = arg.replace(/^--?/, '').split(/=(.*)/s);
  options.set(name, inline ?? argv[(i += 1)] ?? '');
}

const [verb, ...objects] = words;
if (verb === 'get' && objects[0] === 'node' && objects[1]) await getNode(objects[1]);
else if (verb === 'apply') apply();
else exitWith('error: kubectl stand-in acts out only `get node NAME -o jsonpath=...` and `apply -f FILE`', 1);

async function getNode(name: string): Promise<void> {
  const output = options.get('o') ?? options.get('output') ?? '';
  if (output !== `jsonpath=${READY_JSONPATH}`) exitWith(`error: kubectl stand-in answers only -o jsonpath=${READY_JSONPATH}`, 1);
  const kubeconfig = loadKubeconfig();
  let readyz;
  try {
    readyz = await httpsRequest(`${kubeconfig.server}/readyz`, { ca: kubeconfig.ca, cert: kubeconfig.cert, key: kubeconfig.key, timeoutMs: 5_000 });
  } catch (error) {
    const { host } = new URL(kubeconfig.server);
    const reason = dialError(kubeconfig.server, error);
    exitWith(reason.includes('refused') ? `The connection to the server ${host} was refused - did you specify the right host or port?` : `Unable to connect to the server: ${reason}`, 1);
  }
  if (localNodeName() !== name) exitWith(`Error from server (NotFound): nodes "${name}" not found`, 1);
  process.stdout.write(readyz.status === 200 ? 'True' : 'False');
}

function apply(): void {
  const files = [...options.entries()].filter(([name]) => name === 'f' || name === 'filename').map(([, file]) => file);
  if (files.length === 0) exitWith('error: must specify one of -f and -k', 1);
  for (const file of files) {
    if (!existsSync(file)) exitWith(`error: the path "${file}" does not exist`, 1);
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const object = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
      if (object?.kind) process.stdout.write(`${object.kind.toLowerCase()}/${object.metadata?.name ?? ''} created\n`);
    }
  }
}

interface Kubeconfig {
  server: string;
  ca: string;
  cert: string;
  key: string;
}

function loadKubeconfig(): Kubeconfig {
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
function localNodeName(): string | undefined {
  const kubeletConf = readNodeFile('/etc/kubernetes/kubelet.conf');
  if (!kubeletConf) return undefined;
  const certData = (parse(kubeletConf) as { users: { user: { 'client-certificate-data': string } }[] }).users[0]?.user['client-certificate-data'];
  if (!certData) return undefined;
  const subject = new X509Certificate(Buffer.from(certData, 'base64')).subject;
  return /CN=system:node:(\S+)/.exec(subject)?.[1];
}
