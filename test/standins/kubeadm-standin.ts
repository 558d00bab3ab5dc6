// STAND-IN for kubeadm, for tests and the lab only: kubeadm cannot run here. It checks what it is
// given as strictly as `kubeadm config validate` (unknown fields and wrong shapes per config API
// version are errors), runs kubeadm's preflight checks that matter here, and acts out the visible
// effects under PKE_ROOT: certificates signed by the cluster CAs, kubeconfigs with real client
// certificates, static pod manifests, the kubelet's files, and on control-plane nodes the API
// server stand-in (test/standins/apiserver-standin.ts) as a detached process. As kubeadm, init
// uploads its ClusterConfiguration to the ConfigMap kube-system/kubeadm-config, and a
// control-plane join reads it back through the API and deploys the kubernetesVersion named there.
// Its node holds the control-plane images of its own release only (a template's, air-gapped), so
// the join's image preflight fails when that version is another, as kubeadm's pull does with no
// registry to reach.
//
//   kubeadm version [-o short]
//   kubeadm config validate --config FILE
//   kubeadm init --config FILE [--skip-token-print] [--skip-phases=...]
//   kubeadm join --config FILE
//   kubeadm reset -f
//
// Where it differs from kubeadm, on purpose: init does not generate missing CAs (this project's
// certs phase must have written the shared ones); a worker's join checks its token with a bearer
// GET of the bootstrap-token Secret at the discovery endpoint, and its kubelet certificate is
// signed with the CA the init node registered under PKE_STANDIN_CLUSTER_DIR (standing in for the
// cluster-info ConfigMap and the CSR signer); the kubelet it starts registers its Node there, as
// Ready, for every API server stand-in of the cluster to serve; the certificates it issues have
// ECDSA P-256 keys (kubeadm's `encryptionAlgorithm: ECDSA-P256`) whatever the config says, where
// kubeadm's default is RSA-2048 (cheap keys for a busy lab).
//
// Knobs (environment):
//   PKE_STANDIN_KUBEADM_VERSION  the version it reports, and its node's kubelet runs (default: the
//                                config's kubernetesVersion, else the cluster's, else v1.31.2); it
//                                then refuses v1beta4 below 1.31, a control plane more than one
//                                minor older or newer than itself on init, and on a control-plane
//                                join a kubeadm-config kubernetesVersion of an older minor
//   PKE_STANDIN_KUBEADM_INIT_MS, PKE_STANDIN_KUBEADM_JOIN_MS   how long an init or a join takes,
//                                counted from the stand-in's start (default 0): it does its work,
//                                has the API server stand-in listen only from then on, and waits
//                                out the rest before its last lines; work that takes longer (init
//                                also waits for the controlPlaneEndpoint to answer) is not cut
//                                short. A run that fails after preflight takes as long
//   PKE_STANDIN_KUBEADM_FAIL     COMMAND:MESSAGE:COUNT, e.g. `join:too many learner members in
//                                cluster:2`: the first COUNT runs of COMMAND fail late (files
//                                half written, as real failures leave them) with MESSAGE, exit 1;
//                                runs are counted in PKE_ROOT/var/lib/pke-standins/kubeadm-fail-COMMAND
//   PKE_STANDIN_APISERVER_LISTEN HOST:PORT for the API server stand-in (default 0.0.0.0:bindPort)
//   PKE_STANDIN_CLUSTER_DIR      where clusters register their CA for worker joins
//                                (default $TMPDIR/pke-standin-clusters)
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments, stringify } from 'yaml';
import type { CertifiedKey } from '../../agent/controller/clusters/pki.ts';
import { KUBEADM_V1BETA4, schemaFor, validateDocument } from './kubeadm-config-schema.ts';
import { PKI, SHARED_PKI, loadCa, writeControlPlaneCerts, writeKubeconfigs, type ControlPlaneIdentity } from './kubeadm-standin-pki.ts';
import { STATE_DIR, exitWith, readNodeFile, recordCall, root, under, writeNodeFile } from './standin-common.ts';
import { dialError, httpsRequest, type HttpsAnswer } from './standin-https.ts';
import { issueEcdsaLeaf } from './standin-x509.ts';

type Doc = Record<string, unknown>;
type Docs = Record<string, Doc>;

/** An error kubeadm would print before exiting 1. */
class KubeadmError extends Error {}

const MANIFESTS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'];
const KUBECONFIGS = [
  'admin.conf',
  'super-admin.conf',
  'kubelet.conf',
  'bootstrap-kubelet.conf',
  'controller-manager.conf',
  'scheduler.conf',
];
const APISERVER_PID = '/run/pke-standins/apiserver.pid';
const TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const CA_HASH = /^sha256:[a-f0-9]{64}$/;
const DEFAULT_VERSION = 'v1.31.2';

const argv = process.argv.slice(2);
recordCall('kubeadm', argv);
const [command = '', ...rest] = argv;

try {
  switch (command) {
    case 'version':
      version(rest);
      break;
    case 'config':
      validate(rest);
      break;
    case 'init':
      await init(rest);
      break;
    case 'join':
      await join(rest);
      break;
    case 'reset':
      reset(rest);
      break;
    default:
      throw new KubeadmError(`unknown command "${command}" for "kubeadm"\nRun 'kubeadm --help' for usage.`);
  }
} catch (error) {
  if (error instanceof KubeadmError) exitWith(`${error.message}\nTo see the stack trace of this error execute with --v=5 or higher`, 1);
  throw error;
}

// --- commands ------------------------------------------------------------------------------------

function version(args: string[]): void {
  const flags = parseFlags('version', args, { o: 'value', output: 'value' });
  const reported = kubeadmVersion(undefined);
  const output = flags.get('o') ?? flags.get('output');
  if (output === 'short') process.stdout.write(`${reported}\n`);
  else process.stdout.write(`kubeadm version: &version.Info{Major:"1", Minor:"${minor(reported)}", GitVersion:"${reported}"}\n`);
}

/** `kubeadm config validate`: the documents' fields per API version, the versions, the tokens. */
function validate(args: string[]): void {
  const [sub, ...flagArgs] = args;
  if (sub !== 'validate') throw new KubeadmError(`stand-in: only "kubeadm config validate" is acted out`);
  const flags = parseFlags('config validate', flagArgs, { config: 'value' });
  const docs = loadConfig(requireConfigFlag('config validate', flags), [
    'InitConfiguration',
    'ClusterConfiguration',
    'KubeletConfiguration',
    'KubeProxyConfiguration',
    'JoinConfiguration',
  ]);
  checkVersions(docs, str(docs.ClusterConfiguration?.kubernetesVersion));
  for (const bootstrapToken of list(docs.InitConfiguration?.bootstrapTokens)) checkToken(str((bootstrapToken as Doc).token) ?? '');
  const discoveryToken = str(((docs.JoinConfiguration?.discovery as Doc | undefined)?.bootstrapToken as Doc | undefined)?.token);
  if (discoveryToken !== undefined) checkToken(discoveryToken);
  out('ok');
}

async function init(args: string[]): Promise<void> {
  const flags = parseFlags('init', args, {
    config: 'value',
    'skip-token-print': 'bool',
    'skip-phases': 'value',
    'upload-certs': 'bool',
    'ignore-preflight-errors': 'value',
    v: 'value',
  });
  const docs = loadConfig(requireConfigFlag('init', flags), [
    'InitConfiguration',
    'ClusterConfiguration',
    'KubeletConfiguration',
    'KubeProxyConfiguration',
  ]);
  const initCfg = docs.InitConfiguration ?? {};
  const clusterCfg = docs.ClusterConfiguration ?? {};
  const k8sVersion = str(clusterCfg.kubernetesVersion);
  if (!k8sVersion)
    throw new KubeadmError('stand-in: ClusterConfiguration.kubernetesVersion is required (kubeadm would ask the internet for "stable")');
  checkVersions(docs, k8sVersion);
  const bootstrapTokens = list(initCfg.bootstrapTokens) as Doc[];
  const tokens = bootstrapTokens.map((t) => str(t.token) ?? '');
  for (const token of tokens) checkToken(token);

  const registration = (initCfg.nodeRegistration ?? {}) as Doc;
  const nodeName = requireString(registration.name, 'InitConfiguration.nodeRegistration.name');
  const local = (initCfg.localAPIEndpoint ?? {}) as Doc;
  const advertise = requireString(local.advertiseAddress, 'InitConfiguration.localAPIEndpoint.advertiseAddress');
  const bindPort = typeof local.bindPort === 'number' ? local.bindPort : 6443;
  const endpoint = str(clusterCfg.controlPlaneEndpoint) ?? `${advertise}:${bindPort}`;
  const networking = (clusterCfg.networking ?? {}) as Doc;
  const clusterName = str(clusterCfg.clusterName) ?? 'kubernetes';

  out(`[init] Using Kubernetes version: ${k8sVersion}`);
  preflight({ controlPlane: true, join: false });

  const end = endOfCommand('PKE_STANDIN_KUBEADM_INIT_MS');
  await lastingUntil(end, async () => {
    const identity: ControlPlaneIdentity = {
      nodeName,
      advertiseAddress: advertise,
      endpointHost: hostOf(endpoint),
      serviceSubnet: str(networking.serviceSubnet) ?? '10.96.0.0/12',
      dnsDomain: str(networking.dnsDomain) ?? 'cluster.local',
      certSANs: list((clusterCfg.apiServer as Doc | undefined)?.certSANs).map(String),
    };
    const sans = writeControlPlaneCerts(identity, minor(k8sVersion) >= 29);
    out(`[certs] apiserver serving cert is signed for DNS names and IPs [${sans.join(' ')}]`);
    writeNodeKubeconfigs({ nodeName, clusterName, endpoint, advertise, bindPort, k8sVersion, superAdmin: true });
    writeManifests({ k8sVersion, nodeName, advertise, bindPort, clusterCfg, withEtcd: true });
    writeKubeletFiles(registration, docs.KubeletConfiguration);
    writeNodeFile('/var/lib/etcd/member/stand-in', `etcd data of ${nodeName}\n`);
    failIfAsked('init', 'wait-control-plane');

    await waitForApi(await startApiServer(bindPort, k8sVersion, end, endpoint));
    await uploadClusterConfiguration({ ...clusterCfg, kubernetesVersion: withV(k8sVersion), controlPlaneEndpoint: endpoint, clusterName });
    for (const bootstrapToken of bootstrapTokens) await createTokenSecret(bootstrapToken);
    registerCluster(endpoint);
    registerNode(endpoint, nodeName, kubeadmVersion(k8sVersion));
  });
  out('\nYour Kubernetes control-plane has initialized successfully!\n');
  const shown = flags.has('skip-token-print') ? '<value withheld>' : (tokens[0] ?? '<none>');
  out(
    `kubeadm join ${endpoint} --token ${shown} \\\n\t--discovery-token-ca-cert-hash ${flags.has('skip-token-print') ? '<value withheld>' : caHash(loadCa('ca').certPem)}`,
  );
}

async function join(args: string[]): Promise<void> {
  const flags = parseFlags('join', args, { config: 'value', 'ignore-preflight-errors': 'value', 'skip-phases': 'value', v: 'value' });
  const docs = loadConfig(requireConfigFlag('join', flags), ['JoinConfiguration', 'KubeletConfiguration']);
  const joinCfg = docs.JoinConfiguration;
  if (!joinCfg) throw new KubeadmError(`no JoinConfiguration found in the supplied config`);
  if (docs.KubeletConfiguration)
    err(
      `W0000 00:00:00.000000 stand-in] [config] WARNING: Ignored configuration document with GroupVersionKind kubelet.config.k8s.io/v1beta1, Kind=KubeletConfiguration`,
    );
  checkVersions(docs, undefined);

  const discovery = ((joinCfg.discovery ?? {}) as Doc).bootstrapToken as Doc | undefined;
  if (!discovery) throw new KubeadmError('stand-in: only bootstrap token discovery (discovery.bootstrapToken) is acted out');
  const token = requireString(discovery.token, 'discovery.bootstrapToken.token');
  checkToken(token);
  const pins = list(discovery.caCertHashes).map(String);
  if (pins.length === 0 && discovery.unsafeSkipCAVerification !== true) {
    throw new KubeadmError(
      'discovery.bootstrapToken: Invalid value: "": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue',
    );
  }
  for (const pin of pins)
    if (!CA_HASH.test(pin))
      throw new KubeadmError(`invalid discovery token CA certificate hash: ${pin} (expected "sha256:" and 64 hex digits)`);
  const endpoint = requireString(discovery.apiServerEndpoint, 'discovery.bootstrapToken.apiServerEndpoint');
  const registration = (joinCfg.nodeRegistration ?? {}) as Doc;
  const nodeName = requireString(registration.name, 'JoinConfiguration.nodeRegistration.name');
  const controlPlane = joinCfg.controlPlane as Doc | undefined;

  preflight({ controlPlane: controlPlane !== undefined, join: true });
  const end = endOfCommand('PKE_STANDIN_KUBEADM_JOIN_MS');
  await lastingUntil(end, async () => {
    out('[preflight] Reading configuration from the cluster...');
    const { ca, version: k8sVersion } = await discover(endpoint, token, controlPlane !== undefined);
    const hash = caHash(ca.certPem);
    if (pins.length > 0 && !pins.includes(hash)) {
      throw new KubeadmError(
        `error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "${hash}" are pinned`,
      );
    }
    const kubeletVersion = kubeadmVersion(k8sVersion);
    // Before anything is written, as kubeadm's preflight phase.
    if (controlPlane) imagePullCheck(kubeletVersion, k8sVersion);
    const clusterName = 'kubernetes';
    writeNodeFile(`${PKI}/ca.crt`, ca.certPem);
    writeKubeletFiles(registration, undefined);

    if (!controlPlane) {
      writeKubeconfigs(ca, [kubeletKubeconfig(nodeName, clusterName, endpoint)]);
      failIfAsked('join', 'kubelet-start');
      registerNode(endpoint, nodeName, kubeletVersion);
      return;
    }

    const local = (controlPlane.localAPIEndpoint ?? {}) as Doc;
    const advertise = requireString(local.advertiseAddress, 'JoinConfiguration.controlPlane.localAPIEndpoint.advertiseAddress');
    const bindPort = typeof local.bindPort === 'number' ? local.bindPort : 6443;
    writeControlPlaneCerts(
      {
        nodeName,
        advertiseAddress: advertise,
        endpointHost: hostOf(endpoint),
        serviceSubnet: '10.96.0.0/12',
        dnsDomain: 'cluster.local',
        certSANs: [],
      },
      minor(k8sVersion) >= 29,
    );
    writeNodeKubeconfigs({ nodeName, clusterName, endpoint, advertise, bindPort, k8sVersion, superAdmin: false });
    writeManifests({ k8sVersion, nodeName, advertise, bindPort, clusterCfg: {}, withEtcd: false });
    // etcd's member add (as a learner) comes last in a control-plane join: where the one-learner limit bites.
    failIfAsked('join', 'etcd-join');
    writeManifests({ k8sVersion, nodeName, advertise, bindPort, clusterCfg: {}, withEtcd: true });
    writeNodeFile('/var/lib/etcd/member/stand-in', `etcd data of ${nodeName}\n`);
    await waitForApi(await startApiServer(bindPort, k8sVersion, end, endpoint));
    registerCluster(endpoint);
    registerNode(endpoint, nodeName, kubeletVersion);
  });
  out(
    controlPlane ? '\nThis node has joined the cluster and a new control plane instance was created' : '\nThis node has joined the cluster',
  );
}

function reset(args: string[]): void {
  const flags = parseFlags('reset', args, { f: 'bool', force: 'bool', v: 'value' });
  if (!flags.has('f') && !flags.has('force')) throw new KubeadmError("won't proceed; the user didn't answer (Y|n) in order to continue");
  stopApiServer();
  unregisterCluster();
  // The API stand-in's state is what etcd holds for a real one: gone with /var/lib/etcd.
  rmSync(under(`${STATE_DIR}/apiserver`), { recursive: true, force: true });
  for (const name of KUBECONFIGS) rmSync(under(`/etc/kubernetes/${name}`), { force: true });
  const dirs = ['/etc/kubernetes/manifests', '/var/lib/kubelet', PKI, '/var/lib/etcd'];
  for (const dir of dirs) emptyDir(dir);
  out(`[reset] Deleting contents of directories: [${dirs.join(' ')}]`);
  out(`[reset] Deleting files: [${KUBECONFIGS.map((name) => `/etc/kubernetes/${name}`).join(' ')}]`);
}

// --- config --------------------------------------------------------------------------------------

function loadConfig(file: string, kinds: string[]): Docs {
  if (!existsSync(file)) throw new KubeadmError(`unable to read config from "${file}" : open ${file}: no such file or directory`);
  const docs: Docs = {};
  for (const parsed of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (parsed.errors.length > 0) throw new KubeadmError(`error converting YAML to JSON: ${parsed.errors[0]?.message}`);
    const doc = parsed.toJS() as Doc | null;
    if (!doc) continue;
    const apiVersion = str(doc.apiVersion) ?? '';
    const kind = str(doc.kind) ?? '';
    const fields = schemaFor(apiVersion)?.[kind];
    if (!fields || !kinds.includes(kind)) {
      throw new KubeadmError(
        `no kind "${kind}" is registered for version "${apiVersion}" in scheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"`,
      );
    }
    const problems = validateDocument(doc, fields, kind);
    if (problems.length > 0)
      throw new KubeadmError(
        `error unmarshaling configuration schema.GroupVersionKind{Group:"${apiVersion.split('/')[0]}", Version:"${apiVersion.split('/')[1]}", Kind:"${kind}"}: ${problems.join('; ')}`,
      );
    if (docs[kind])
      throw new KubeadmError(
        `invalid configuration for GroupVersionKind ${apiVersion}, Kind=${kind}: kind and apiVersion is mandatory information that must be specified once`,
      );
    docs[kind] = doc;
  }
  return docs;
}

function requireConfigFlag(cmd: string, flags: Map<string, string>): string {
  const file = flags.get('config');
  if (!file) throw new KubeadmError(`stand-in: kubeadm ${cmd} is acted out only with --config FILE`);
  return file;
}

/** The version this kubeadm reports: the knob, else the cluster's version, else the default. */
function kubeadmVersion(clusterVersion: string | undefined): string {
  return withV(process.env.PKE_STANDIN_KUBEADM_VERSION ?? clusterVersion ?? DEFAULT_VERSION);
}

function withV(version: string): string {
  return version.startsWith('v') ? version : `v${version}`;
}

function checkVersions(docs: Docs, k8sVersion: string | undefined): void {
  const own = kubeadmVersion(k8sVersion);
  for (const [kind, doc] of Object.entries(docs)) {
    if (doc.apiVersion === KUBEADM_V1BETA4 && minor(own) < 31) {
      throw new KubeadmError(
        `no kind "${kind}" is registered for version "${KUBEADM_V1BETA4}" in scheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"`,
      );
    }
  }
  if (k8sVersion && (minor(k8sVersion) < minor(own) - 1 || minor(k8sVersion) > minor(own))) {
    throw new KubeadmError(
      `this version of kubeadm (${own}) only supports deploying clusters with the control plane version >= 1.${minor(own) - 1}.0 and <= ${own}. Current version: ${k8sVersion}`,
    );
  }
}

function checkToken(token: string): void {
  if (!TOKEN.test(token))
    throw new KubeadmError(`the bootstrap token "${token.replace(/\..*/, '.<secret>')}" was not of the form "[a-z0-9]{6}.[a-z0-9]{16}"`);
}

// --- preflight -----------------------------------------------------------------------------------

function preflight({ controlPlane, join }: { controlPlane: boolean; join: boolean }): void {
  out('[preflight] Running pre-flight checks');
  const errors: string[] = [];
  const fileAvailable = (nodePath: string) => {
    if (existsSync(under(nodePath))) errors.push(`[ERROR FileAvailable-${nodePath.replaceAll('/', '-')}]: ${nodePath} already exists`);
  };
  if (controlPlane) {
    for (const name of MANIFESTS) fileAvailable(`/etc/kubernetes/manifests/${name}.yaml`);
    if (existsSync(under('/var/lib/etcd')) && readdirSync(under('/var/lib/etcd')).length > 0)
      errors.push('[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty');
    for (const file of SHARED_PKI) {
      if (!existsSync(under(`${PKI}/${file}`)))
        errors.push(
          `[ERROR SharedPKI]: stand-in: ${PKI}/${file} is missing (the certs phase writes the cluster's shared CAs before kubeadm runs)`,
        );
    }
  }
  if (join) {
    fileAvailable('/etc/kubernetes/kubelet.conf');
    fileAvailable('/etc/kubernetes/bootstrap-kubelet.conf');
    if (!controlPlane) fileAvailable(`${PKI}/ca.crt`);
  }
  if ((readNodeFile('/proc/sys/net/ipv4/ip_forward') ?? '0').trim() !== '1') {
    errors.push('[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1');
  }
  const swaps = (readNodeFile('/proc/swaps') ?? '')
    .split('\n')
    .slice(1)
    .filter((line) => line.trim());
  if (swaps.length > 0) errors.push('[ERROR Swap]: running with swap on is not supported. Please disable swap');
  if (!existsSync(under(`${STATE_DIR}/systemd/kubelet.service.enabled`))) {
    err("\t[WARNING Service-Kubelet]: kubelet service is not enabled, please run 'systemctl enable kubelet.service'");
  }
  if (errors.length > 0) throw preflightErrors(errors);
}

/**
 * kubeadm's ImagePull preflight of a control-plane join: the images of `controlPlaneVersion` are
 * pulled, and this node has only those of its own release (`nodeVersion`).
 */
function imagePullCheck(nodeVersion: string, controlPlaneVersion: string): void {
  if (nodeVersion === controlPlaneVersion) return;
  throw preflightErrors(
    ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map((component) => {
      const image = `registry.k8s.io/${component}:${controlPlaneVersion}`;
      return `[ERROR ImagePull]: failed to pull image ${image}: failed to pull image ${image}: failed to pull and unpack image "${image}": failed to resolve reference "${image}": dial tcp: lookup registry.k8s.io: no such host (stand-in: this node holds the images of ${nodeVersion} only)`;
    }),
  );
}

function preflightErrors(errors: string[]): KubeadmError {
  return new KubeadmError(
    `error execution phase preflight: [preflight] Some fatal errors occurred:\n${errors.map((e) => `\t${e}`).join('\n')}\n[preflight] If you know what you are doing, you can make a check non-fatal with \`--ignore-preflight-errors=...\``,
  );
}

// --- files ---------------------------------------------------------------------------------------

interface NodeKubeconfigs {
  nodeName: string;
  clusterName: string;
  endpoint: string;
  advertise: string;
  bindPort: number;
  k8sVersion: string;
  superAdmin: boolean;
}

function writeNodeKubeconfigs(spec: NodeKubeconfigs): void {
  const { nodeName, clusterName, endpoint, advertise, bindPort, k8sVersion } = spec;
  // 1.29 split the admin into a cluster-admins group and a break-glass super-admin.conf (init only).
  const split = minor(k8sVersion) >= 29;
  const local = `https://${advertise}:${bindPort}`;
  writeKubeconfigs(loadCa('ca'), [
    {
      file: '/etc/kubernetes/admin.conf',
      clusterName,
      server: `https://${endpoint}`,
      user: 'kubernetes-admin',
      commonName: 'kubernetes-admin',
      organizations: [split ? 'kubeadm:cluster-admins' : 'system:masters'],
    },
    ...(split && spec.superAdmin
      ? [
          {
            file: '/etc/kubernetes/super-admin.conf',
            clusterName,
            server: `https://${endpoint}`,
            user: 'kubernetes-super-admin',
            commonName: 'kubernetes-super-admin',
            organizations: ['system:masters'],
          },
        ]
      : []),
    kubeletKubeconfig(nodeName, clusterName, endpoint),
    {
      file: '/etc/kubernetes/controller-manager.conf',
      clusterName,
      server: local,
      user: 'system:kube-controller-manager',
      commonName: 'system:kube-controller-manager',
    },
    {
      file: '/etc/kubernetes/scheduler.conf',
      clusterName,
      server: local,
      user: 'system:kube-scheduler',
      commonName: 'system:kube-scheduler',
    },
  ]);
}

function kubeletKubeconfig(nodeName: string, clusterName: string, endpoint: string) {
  return {
    file: '/etc/kubernetes/kubelet.conf',
    clusterName,
    server: `https://${endpoint}`,
    user: `system:node:${nodeName}`,
    commonName: `system:node:${nodeName}`,
    organizations: ['system:nodes'],
    // As the kubelet keeps it once it runs: the rotating certificate and key in one file.
    clientFile: '/var/lib/kubelet/pki/kubelet-client-current.pem',
  };
}

interface ManifestSpec {
  k8sVersion: string;
  nodeName: string;
  advertise: string;
  bindPort: number;
  clusterCfg: Doc;
  withEtcd: boolean;
}

function writeManifests({ k8sVersion, nodeName, advertise, bindPort, clusterCfg, withEtcd }: ManifestSpec): void {
  const networking = (clusterCfg.networking ?? {}) as Doc;
  const flagsOf = (component: string) => extraArgs(((clusterCfg[component] ?? {}) as Doc).extraArgs);
  const pods: Record<string, string[]> = {
    'kube-apiserver': [
      `--advertise-address=${advertise}`,
      `--secure-port=${bindPort}`,
      `--service-cluster-ip-range=${str(networking.serviceSubnet) ?? '10.96.0.0/12'}`,
      '--etcd-servers=https://127.0.0.1:2379',
      '--client-ca-file=/etc/kubernetes/pki/ca.crt',
      ...flagsOf('apiServer'),
    ],
    'kube-controller-manager': [
      '--kubeconfig=/etc/kubernetes/controller-manager.conf',
      ...(str(networking.podSubnet) ? ['--allocate-node-cidrs=true', `--cluster-cidr=${str(networking.podSubnet)}`] : []),
      ...flagsOf('controllerManager'),
    ],
    'kube-scheduler': ['--kubeconfig=/etc/kubernetes/scheduler.conf', ...flagsOf('scheduler')],
  };
  if (withEtcd)
    pods.etcd = [
      `--name=${nodeName}`,
      `--advertise-client-urls=https://${advertise}:2379`,
      `--initial-advertise-peer-urls=https://${advertise}:2380`,
    ];
  for (const [name, flags] of Object.entries(pods)) {
    const image = name === 'etcd' ? 'registry.k8s.io/etcd:3.5.15-0' : `registry.k8s.io/${name}:${k8sVersion}`;
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'kube-system', labels: { component: name, tier: 'control-plane' } },
      spec: { hostNetwork: true, containers: [{ name, image, command: [name, ...flags] }] },
    };
    writeNodeFile(`/etc/kubernetes/manifests/${name}.yaml`, stringify(pod), 0o600);
  }
}

/** kubelet's config and the flags kubeadm hands it: the container runtime and kubeletExtraArgs. */
function writeKubeletFiles(registration: Doc, kubeletConfig: Doc | undefined): void {
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    cgroupDriver: 'systemd',
    ...(kubeletConfig ?? {}),
  };
  writeNodeFile('/var/lib/kubelet/config.yaml', stringify(config));
  const flags = [
    `--container-runtime-endpoint=${str(registration.criSocket) ?? 'unix:///var/run/containerd/containerd.sock'}`,
    ...extraArgs(registration.kubeletExtraArgs),
  ];
  writeNodeFile('/var/lib/kubelet/kubeadm-flags.env', `KUBELET_KUBEADM_ARGS="${flags.join(' ')}"\n`);
}

/** v1beta3 maps and v1beta4 name/value lists alike, as command-line flags. */
function extraArgs(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((arg) => `--${(arg as Doc).name}=${(arg as Doc).value}`);
  if (value && typeof value === 'object') return Object.entries(value).map(([name, v]) => `--${name}=${String(v)}`);
  return [];
}

function emptyDir(nodePath: string): void {
  const dir = under(nodePath);
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) rmSync(path.join(dir, entry), { recursive: true, force: true });
}

// --- the API server stand-in ---------------------------------------------------------------------

interface ApiServer {
  url: string;
  /** Date.now() time from which it listens. */
  listensFrom: number;
}

/**
 * Starts the API server stand-in detached, its stdio to a log under PKE_ROOT. It listens from
 * `listensFrom` on (started earlier, its own start-up overlaps the wait). It runs as this stand-in
 * does: from its bundle beside this one (.cache/standins), or from its source beside this one.
 */
async function startApiServer(bindPort: number, k8sVersion: string, listensFrom: number, endpoint: string): Promise<ApiServer> {
  const script = path.join(import.meta.dirname, `apiserver-standin${path.extname(import.meta.filename)}`);
  // Loaded only here: the other commands start no process.
  const { spawn } = await import('node:child_process');
  stopApiServer();
  const listen = process.env.PKE_STANDIN_APISERVER_LISTEN ?? `0.0.0.0:${bindPort}`;
  const logFile = under('/var/log/pke-standins/apiserver.log');
  const pidFile = under(APISERVER_PID);
  const stateDir = under(`${STATE_DIR}/apiserver`);
  for (const dir of [path.dirname(logFile), path.dirname(pidFile), stateDir]) mkdirSync(dir, { recursive: true });
  const log = openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      script,
      '--listen',
      listen,
      '--cert',
      under(`${PKI}/apiserver.crt`),
      '--key',
      under(`${PKI}/apiserver.key`),
      '--client-ca',
      under(`${PKI}/ca.crt`),
      '--state-dir',
      stateDir,
      '--nodes-dir',
      nodesDir(endpoint),
      '--version',
      k8sVersion,
      '--pid-file',
      pidFile,
      '--listen-at',
      String(Math.round(listensFrom)),
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  if (child.pid === undefined) throw new KubeadmError(`stand-in: could not start ${script}`);
  writeFileSync(pidFile, `${child.pid}\n`);
  child.unref();
  const [host = '0.0.0.0', port = String(bindPort)] = splitHostPort(listen);
  return { url: `https://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`, listensFrom };
}

function stopApiServer(): void {
  const pid = Number(readNodeFile(APISERVER_PID)?.trim());
  rmSync(under(APISERVER_PID), { force: true });
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone between the check and the kill
  }
}

/** kubeadm's wait-control-plane: the API answers /readyz within the health-check timeout. */
async function waitForApi(api: ApiServer): Promise<void> {
  const ca = loadCa('ca').certPem;
  await sleep(Math.max(0, api.listensFrom - Date.now()));
  const deadline = Date.now() + 30_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const answer = await httpsRequest(`${api.url}/readyz`, { ca, anyHostName: true, timeoutMs: 1_000 });
      if (answer.status === 200) return;
      last = `HTTP ${answer.status} ${answer.body.slice(0, 200)}`;
    } catch (error) {
      last = dialError(api.url, error);
    }
    // Often: a refused connection costs next to nothing, and init is through once the API answers.
    await sleep(25);
  }
  const logTail = (readNodeFile('/var/log/pke-standins/apiserver.log') ?? '').trim().split('\n').slice(-5).join('\n');
  throw new KubeadmError(
    `error execution phase wait-control-plane: the API server stand-in at ${api.url} did not become ready: ${last}\n${logTail}`,
  );
}

/**
 * The bootstrap-token Secret kubeadm creates for each of the config's bootstrapTokens, through
 * admin.conf's server, the controlPlaneEndpoint, as kubeadm's bootstrap-token phase does.
 */
async function createTokenSecret(bootstrapToken: Doc): Promise<void> {
  const [, id = '', secret = ''] = TOKEN.exec(str(bootstrapToken.token) ?? '') ?? [];
  const admin = adminCredentials();
  const ttlMs = durationMs(str(bootstrapToken.ttl) ?? '24h');
  const fields: Record<string, string> = {
    'token-id': id,
    'token-secret': secret,
    ...(ttlMs > 0 ? { expiration: new Date(Date.now() + ttlMs).toISOString().replace(/\.\d+Z$/, 'Z') } : {}),
    ...(str(bootstrapToken.description) ? { description: str(bootstrapToken.description) ?? '' } : {}),
    'usage-bootstrap-authentication': 'true',
    'usage-bootstrap-signing': 'true',
    'auth-extra-groups': 'system:bootstrappers:kubeadm:default-node-token',
  };
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
    type: 'bootstrap.kubernetes.io/token',
    data: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
  const url = `${admin.server}/api/v1/namespaces/kube-system/secrets`;
  const failure = `error execution phase bootstrap-token: error creating bootstrap token "${id}": POST ${url}`;
  // A retry of a POST that did arrive gets 409, which is as good as 201.
  const answer = await throughEndpoint(url, 'POST', body, failure);
  if (answer.status !== 201 && answer.status !== 409)
    throw new KubeadmError(`${failure}: HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
}

/**
 * kubeadm's upload-config phase: the ClusterConfiguration in kube-system/kubeadm-config (made, or
 * replaced if there), through admin.conf's server as the bootstrap tokens are.
 */
async function uploadClusterConfiguration(clusterCfg: Doc): Promise<void> {
  const admin = adminCredentials();
  const configMaps = `${admin.server}/api/v1/namespaces/kube-system/configmaps`;
  const failure = 'error execution phase upload-config/kubeadm: error uploading the kubeadm ClusterConfiguration';
  const configMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'kubeadm-config', namespace: 'kube-system' },
    data: { ClusterConfiguration: stringify(clusterCfg) },
  };
  let answer = await throughEndpoint(configMaps, 'POST', configMap, `${failure}: POST ${configMaps}`);
  if (answer.status === 409) {
    // Unconditional (no resourceVersion), as kubeadm's CreateOrUpdate does after AlreadyExists.
    const url = `${configMaps}/kubeadm-config`;
    answer = await throughEndpoint(url, 'PUT', configMap, `${failure}: PUT ${url}`);
  }
  if (answer.status !== 200 && answer.status !== 201)
    throw new KubeadmError(`${failure}: HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
}

/**
 * One request to admin.conf's server, the controlPlaneEndpoint, with admin.conf's credentials,
 * retried for 30 s while it gets no answer: init is through only once the endpoint (the VIP)
 * answers. Short attempts: a connection begun before the VIP was up waits for ARP, while a new one
 * gets through at once. `failure` begins the message of a request that never got an answer.
 */
async function throughEndpoint(url: string, method: string, body: unknown, failure: string): Promise<HttpsAnswer> {
  const admin = adminCredentials();
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await httpsRequest(url, { method, body, ca: admin.ca, cert: admin.cert, key: admin.key, timeoutMs: 500 });
    } catch (error) {
      if (Date.now() > deadline) throw new KubeadmError(`${failure}: ${dialError(url, error)}`);
      await sleep(100);
    }
  }
}

function adminCredentials(): { server: string; ca: string; cert: string; key: string } {
  const kubeconfig = readNodeFile('/etc/kubernetes/admin.conf') ?? '';
  const value = (name: string) => new RegExp(`${name}: (\\S+)`).exec(kubeconfig)?.[1] ?? '';
  const decoded = (name: string) => Buffer.from(value(name), 'base64').toString('utf8');
  return {
    server: value('server'),
    ca: decoded('certificate-authority-data'),
    cert: decoded('client-certificate-data'),
    key: decoded('client-key-data'),
  };
}

/**
 * kubeadm's token discovery, as this stand-in acts it out: the endpoint must answer, and the
 * token must exist as a bootstrap-token Secret there. The Secret is read the way the API
 * server's token authenticator would see it, with a client certificate of the cluster CA (a
 * worker has that CA from the cluster registry). Answers the CA and the cluster's version: for a
 * control-plane join the kubernetesVersion of kubeadm-config's ClusterConfiguration, read with
 * the same credentials, as kubeadm's join reads the cluster's configuration.
 */
async function discover(endpoint: string, token: string, controlPlane: boolean): Promise<{ ca: CertifiedKey; version: string }> {
  const [, id = '', secret = ''] = TOKEN.exec(token) ?? [];
  const clusterInfo = `https://${endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s`;
  let versionAnswer;
  try {
    versionAnswer = await httpsRequest(`https://${endpoint}/version`, { timeoutMs: 10_000 });
  } catch (error) {
    throw new KubeadmError(
      `error execution phase preflight: couldn't validate the identity of the API Server: Get "${clusterInfo}": ${dialError(clusterInfo, error)}`,
    );
  }
  const ca = controlPlane ? loadCa('ca') : clusterCa(endpoint);
  const reader = issueEcdsaLeaf(ca, {
    commonName: 'pke-standin:token-authenticator',
    organizations: ['system:masters'],
    usage: 'client',
    validDays: 1,
  });
  const answer = await httpsRequest(`https://${endpoint}/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`, {
    ca: ca.certPem,
    cert: reader.certPem,
    key: reader.keyPem,
    timeoutMs: 10_000,
  });
  const stored = answer.status === 200 ? ((JSON.parse(answer.body) as { data?: Record<string, string> }).data ?? {}) : {};
  if (Buffer.from(stored['token-secret'] ?? '', 'base64').toString('utf8') !== secret) {
    throw new KubeadmError(
      `error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "${id}"`,
    );
  }
  if (controlPlane) return { ca, version: await clusterConfigurationVersion(endpoint, ca.certPem, reader) };
  const gitVersion = versionAnswer.status === 200 ? str((JSON.parse(versionAnswer.body) as Doc).gitVersion) : undefined;
  return { ca, version: kubeadmVersion(gitVersion) };
}

/** ClusterConfiguration.kubernetesVersion in kube-system/kubeadm-config, with the leading v. */
async function clusterConfigurationVersion(endpoint: string, caPem: string, reader: CertifiedKey): Promise<string> {
  const url = `https://${endpoint}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s`;
  const failure = 'error execution phase preflight: unable to fetch the kubeadm-config ConfigMap';
  let answer: HttpsAnswer;
  try {
    answer = await httpsRequest(url, { ca: caPem, cert: reader.certPem, key: reader.keyPem, timeoutMs: 10_000 });
  } catch (error) {
    throw new KubeadmError(`${failure}: failed to get config map: Get "${url}": ${dialError(url, error)}`);
  }
  if (answer.status === 404) throw new KubeadmError(`${failure}: failed to get config map: configmaps "kubeadm-config" not found`);
  if (answer.status !== 200)
    throw new KubeadmError(`${failure}: failed to get config map: HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
  out("[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'");
  const text = (JSON.parse(answer.body) as { data?: Record<string, string> }).data?.ClusterConfiguration;
  const parsed = text === undefined ? undefined : (parseAllDocuments(text)[0]?.toJS() as Doc | null | undefined);
  const version = str(parsed?.kubernetesVersion);
  if (!version) throw new KubeadmError(`${failure}: the ClusterConfiguration in it names no kubernetesVersion`);
  return withV(version);
}

// --- the stand-in cluster registry (cluster-info, the kubelet CSR signer, the Nodes) ---------------

function registryEntry(endpoint: string): string {
  const dir = process.env.PKE_STANDIN_CLUSTER_DIR ?? path.join(tmpdir(), 'pke-standin-clusters');
  return path.join(dir, endpoint.replace(/[^A-Za-z0-9.-]/g, '_'));
}

function registerCluster(endpoint: string): void {
  const entry = registryEntry(endpoint);
  if (existsSync(path.join(entry, 'owner')) && readFileSync(path.join(entry, 'owner'), 'utf8') !== root()) return;
  mkdirSync(entry, { recursive: true, mode: 0o700 });
  const ca = loadCa('ca');
  writeFileSync(path.join(entry, 'ca.crt'), ca.certPem);
  writeFileSync(path.join(entry, 'ca.key'), ca.keyPem, { mode: 0o600 });
  writeFileSync(path.join(entry, 'owner'), root());
  writeNodeFile(`${STATE_DIR}/cluster-entry`, entry);
}

function nodesDir(endpoint: string): string {
  return path.join(registryEntry(endpoint), 'nodes');
}

/** The Node object the kubelet (of `kubeletVersion`) would register on starting; the API server stand-ins serve it from here. */
function registerNode(endpoint: string, nodeName: string, kubeletVersion: string): void {
  const dir = nodesDir(endpoint);
  mkdirSync(dir, { recursive: true });
  const registeredAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  writeFileSync(path.join(dir, `${nodeName}.json`), `${JSON.stringify({ name: nodeName, registeredAt, kubeletVersion })}\n`);
}

function unregisterCluster(): void {
  const entry = readNodeFile(`${STATE_DIR}/cluster-entry`);
  if (entry && existsSync(path.join(entry, 'owner')) && readFileSync(path.join(entry, 'owner'), 'utf8') === root())
    rmSync(entry, { recursive: true, force: true });
  rmSync(under(`${STATE_DIR}/cluster-entry`), { force: true });
}

function clusterCa(endpoint: string): CertifiedKey {
  const entry = registryEntry(endpoint);
  if (!existsSync(path.join(entry, 'ca.crt'))) {
    throw new KubeadmError(
      `error execution phase preflight: couldn't validate the identity of the API Server: stand-in: no cluster registered at ${endpoint} (under ${path.dirname(entry)})`,
    );
  }
  return { certPem: readFileSync(path.join(entry, 'ca.crt'), 'utf8'), keyPem: readFileSync(path.join(entry, 'ca.key'), 'utf8') };
}

// --- knobs and small helpers ---------------------------------------------------------------------

/** When this command should be through (Date.now() time): the knob's duration after this process started, as performance.now() counts. */
function endOfCommand(durationKnob: string): number {
  return Date.now() + Number(process.env[durationKnob] ?? 0) - performance.now();
}

/** Runs `work`, then waits until `end`, whether it succeeded or failed: a failure comes as late as success would. */
async function lastingUntil(end: number, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } finally {
    await sleep(Math.max(0, end - Date.now()));
  }
}

/** PKE_STANDIN_KUBEADM_FAIL=COMMAND:MESSAGE:COUNT fails the first COUNT runs of COMMAND. */
function failIfAsked(cmd: string, phase: string): void {
  const knob = process.env.PKE_STANDIN_KUBEADM_FAIL;
  if (!knob) return;
  const parts = knob.split(':');
  const count = Number(parts.pop());
  const [target, ...message] = parts;
  if (target !== cmd || !Number.isInteger(count)) return;
  const counter = `${STATE_DIR}/kubeadm-fail-${cmd}`;
  const failed = Number(readNodeFile(counter) ?? '0');
  if (failed >= count) return;
  writeNodeFile(counter, String(failed + 1));
  throw new KubeadmError(`error execution phase ${phase}: ${message.join(':')}`);
}

type FlagKind = 'bool' | 'value';

/** `--name value`, `--name=value`, `-f`; kubeadm refuses unknown flags and most flags mixed with --config. */
function parseFlags(cmd: string, args: string[], known: Record<string, FlagKind>): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('-')) throw new KubeadmError(`unknown command "${arg}" for "kubeadm ${cmd}"`);
    const [rawName = '', inline] = arg.replace(/^--?/, '').split(/=(.*)/s);
    const kind = known[rawName];
    if (!kind) throw new KubeadmError(`unknown flag: ${arg.split('=')[0]}`);
    if (kind === 'bool') flags.set(rawName, inline ?? 'true');
    else {
      const value = inline ?? args[(i += 1)];
      if (value === undefined) throw new KubeadmError(`flag needs an argument: --${rawName}`);
      flags.set(rawName, value);
    }
  }
  if (flags.has('config')) {
    const mixed = [...flags.keys()].filter(
      (name) =>
        !['config', 'ignore-preflight-errors', 'dry-run', 'v', 'upload-certs', 'f', 'force'].includes(name) && !name.startsWith('skip-'),
    );
    if (mixed.length > 0) throw new KubeadmError(`can not mix '--config' with arguments [${mixed.join(' ')}]`);
  }
  return flags;
}

function caHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** A Go duration such as `7200s`, `2h0m0s` or `90m`, in milliseconds; 0 means "never expires". */
function durationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
  let total = 0;
  for (const [, amount, unit = 's'] of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) total += Number(amount) * (units[unit] ?? 0);
  return total;
}

function minor(version: string): number {
  return Number(/^v?1\.(\d+)/.exec(version)?.[1] ?? 0);
}

function hostOf(endpoint: string): string {
  return splitHostPort(endpoint)[0] ?? endpoint;
}

function splitHostPort(value: string): [string | undefined, string | undefined] {
  const index = value.lastIndexOf(':');
  return index < 0 ? [value, undefined] : [value.slice(0, index), value.slice(index + 1)];
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function requireString(value: unknown, field: string): string {
  const text = str(value);
  if (!text) throw new KubeadmError(`stand-in: ${field} is required (the agent always sets it)`);
  return text;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}
