// STAND-IN for kubectl, for tests and the lab only (what the leader's addons phase runs). Acts out:
//   kubectl --kubeconfig F apply -f FILE...       (recorded and parsed; objects applied before are `unchanged`;
//                                                 `-f -` reads stdin, which the call log does not record)
//   kubectl --kubeconfig F -n NS rollout status KIND/NAME --timeout=T
//                                                 (succeeds, unless PKE_STANDIN_KUBECTL_ROLLOUT_FAIL names
//                                                 NAME (comma-separated list): then fails as a timed-out rollout does)
// The YAML library loads only for `apply`: `rollout status`, run for every workload, needs none,
// and it would be most of its start-up CPU.
import { existsSync, readFileSync } from 'node:fs';
import { STATE_DIR, exitWith, readNodeFile, recordCall, writeNodeFile } from './standin-common.ts';

const APPLIED_OBJECTS = `${STATE_DIR}/kubectl-applied.json`;

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
if (verb === 'apply') await apply();
else if (verb === 'rollout' && objects[0] === 'status' && objects[1]) rolloutStatus(objects[1]);
else exitWith('error: kubectl stand-in acts out only `apply -f FILE` and `rollout status KIND/NAME`', 1);

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
      if (!object.apiVersion || !object.kind || !object.metadata?.name)
        exitWith(`error: error validating "${file}": apiVersion, kind and metadata.name are required`, 1);
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
