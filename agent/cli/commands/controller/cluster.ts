import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { InputError, errorMessage } from '../../../core/errors.ts';
import { ownValue } from '../../../core/records.ts';
import { issuePath } from '../../../core/schema-issues.ts';
import { renderFields, renderTable } from '../../../core/table.ts';
import { clusterSpecSchema, vsphereCredentialsSchema, type ClusterSpecInput, type ClusterSummary } from '../../../protocol/api.ts';
import { commandContext } from '../../context.ts';
import type { ClusterArgs, ClusterCreateArgs, ClusterVsphereArgs, ConnectionArgs } from '../controller.ts';
import { adminClient, asInputError } from './connect.ts';
import { parseDuration } from './flags.ts';

/** The flag behind each field of the cluster spec, for error messages. */
const SPEC_FLAGS: Record<string, string> = {
  name: '--name',
  kubernetesVersion: '--kubernetes-version',
  'controlPlaneEndpoint.vip': '--vip',
  'controlPlaneEndpoint.port': '--port',
  'controlPlaneEndpoint.interface': '--interface',
  controlPlaneNodes: '--control-plane-nodes',
  pools: '--pool',
  podCidr: '--pod-cidr',
  serviceCidr: '--service-cidr',
  nodeTokenTtlSeconds: '--token-ttl',
  leaseTtlSeconds: '--lease-ttl',
  'addons.cni': '--cni',
  'addons.metallb': '--metallb-address',
  cgroupDriver: '--cgroup-driver',
  allowCgroupV1: '--allow-cgroup-v1',
  imageRepository: '--image-repository',
  provisioning: '--provision',
};

/** The flag of a spec field, or of its nearest parent that has one (`addons.metallb.addresses.0` → --metallb-address). */
function flagOf(field: string): string | undefined {
  for (let parts = field.split('.'); parts.length > 0; parts = parts.slice(0, -1)) {
    const flag = ownValue(SPEC_FLAGS, parts.join('.'));
    if (flag) return flag;
  }
  return undefined;
}

export async function createCluster(args: ClusterCreateArgs): Promise<void> {
  const ctx = commandContext(args);
  const spec = await clusterSpec(args);
  const client = await adminClient(args);
  try {
    const cluster = await client.createCluster(spec).catch((error: unknown) => {
      throw asInputError(error, SPEC_FLAGS);
    });
    ctx.print(ctx.json ? JSON.stringify(cluster) : describeCluster(cluster));
  } finally {
    await client.close();
  }
}

export async function listClusters(args: ConnectionArgs): Promise<void> {
  const ctx = commandContext(args);
  const client = await adminClient(args);
  try {
    const { clusters } = await client.listClusters();
    if (ctx.json) {
      ctx.print(JSON.stringify(clusters));
      return;
    }
    const rows = clusters.map((c) => [
      c.id,
      c.name,
      c.spec.kubernetesVersion,
      `${c.spec.controlPlaneEndpoint.vip}:${c.spec.controlPlaneEndpoint.port}`,
      c.nodes,
      c.initialized ? 'yes' : 'no',
    ]);
    ctx.print(renderTable(['ID', 'NAME', 'KUBERNETES', 'ENDPOINT', 'NODES', 'INITIALIZED'], rows));
  } finally {
    await client.close();
  }
}

export async function showCluster(args: ClusterArgs): Promise<void> {
  const ctx = commandContext(args);
  const client = await adminClient(args);
  try {
    const cluster = await client.showCluster(args.cluster);
    ctx.print(ctx.json ? JSON.stringify(cluster) : describeCluster(cluster));
  } finally {
    await client.close();
  }
}

const VSPHERE_FLAGS: Record<string, string> = {
  server: '--server',
  username: '--username',
  password: '--password-file',
  datacenters: '--datacenter',
  thumbprint: '--thumbprint',
  port: '--port',
  ca: '--vcenter-ca-file',
};

/** Sets the vCenter connection; the password is read from a file or stdin and never printed. */
export async function setVsphere(args: ClusterVsphereArgs): Promise<void> {
  const ctx = commandContext(args);
  const password = (await readPassword(args['password-file'])).replace(/\r?\n$/, '');
  const credentials = {
    server: args.server,
    username: args.username,
    password,
    datacenters: args.datacenter,
    insecure: args.insecure ?? false,
    thumbprint: args.thumbprint,
    port: args.port,
    ca: args['vcenter-ca-file'] === undefined ? undefined : await readCaFile(args['vcenter-ca-file']),
  };
  const parsed = vsphereCredentialsSchema.safeParse(credentials);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? '');
    throw new InputError(`${ownValue(VSPHERE_FLAGS, field) ?? field}: ${issue?.message ?? 'invalid'}`);
  }
  const client = await adminClient(args);
  try {
    await client.setVsphere(args.cluster, parsed.data).catch((error: unknown) => {
      throw asInputError(error, VSPHERE_FLAGS);
    });
    ctx.print(
      ctx.json
        ? JSON.stringify({ cluster: args.cluster, server: args.server })
        : `vCenter connection for ${args.cluster} set: ${args.username} at ${args.server}`,
    );
  } finally {
    await client.close();
  }
}

async function readCaFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new InputError(`--vcenter-ca-file: cannot read ${file}: ${errorMessage(error)}`, { path: file });
  }
}

async function readPassword(file: string): Promise<string> {
  try {
    return await readFile(file === '-' ? '/dev/stdin' : file, 'utf8');
  } catch (error) {
    throw new InputError(`--password-file: cannot read ${file}: ${errorMessage(error)}`, { path: file });
  }
}

/** The spec from --file (if any) with the flags on top, checked here so that errors name the flag. */
async function clusterSpec(args: ClusterCreateArgs): Promise<ClusterSpecInput> {
  const base = args.file === undefined ? {} : await readSpecFile(args.file);
  const endpoint = { ...(base.controlPlaneEndpoint ?? {}) } as Partial<ClusterSpecInput['controlPlaneEndpoint']>;
  if (args.vip !== undefined) endpoint.vip = args.vip;
  if (args.port !== undefined) endpoint.port = args.port;
  if (args.interface !== undefined) endpoint.interface = args.interface;
  const spec: Record<string, unknown> = { ...base, controlPlaneEndpoint: endpoint };
  const set = (field: string, value: unknown) => {
    if (value !== undefined) spec[field] = value;
  };
  set('name', args.name);
  set('kubernetesVersion', args['kubernetes-version']);
  set('controlPlaneNodes', args['control-plane-nodes']);
  set(
    'pools',
    args.pool?.map((name) => ({ name })),
  );
  set('podCidr', args['pod-cidr']);
  set('serviceCidr', args['service-cidr']);
  set('nodeTokenTtlSeconds', args['token-ttl'] === undefined ? undefined : parseDuration('--token-ttl', args['token-ttl']));
  set('leaseTtlSeconds', args['lease-ttl'] === undefined ? undefined : parseDuration('--lease-ttl', args['lease-ttl']));
  set('cgroupDriver', args['cgroup-driver']);
  set('allowCgroupV1', args['allow-cgroup-v1']);
  set('imageRepository', args['image-repository']);
  if (args.provision && spec.provisioning === undefined) spec.provisioning = {};
  if (args.cni !== undefined || args['metallb-address'] !== undefined) {
    const addons = { ...(base.addons ?? {}) };
    if (args.cni !== undefined) addons.cni = args.cni;
    if (args['metallb-address'] !== undefined) addons.metallb = { addresses: args['metallb-address'] };
    spec.addons = addons;
  }

  const parsed = clusterSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue ? issuePath(issue) : '';
    const flag = flagOf(field);
    const missing = issue?.code === 'invalid_type' && issue.input === undefined;
    // A field the file set (a pool's placement) is named in the file, not by the flag of its parent.
    const flagGiven = flag !== undefined && ownValue(args as unknown as Record<string, unknown>, flag.slice(2)) !== undefined;
    const where = flag && (flagGiven || !args.file) ? flag : args.file ? `${args.file}: ${field}` : field;
    throw new InputError(missing ? `${where} is required` : `${where}: ${issue?.message ?? 'invalid'}`);
  }
  return spec as ClusterSpecInput;
}

async function readSpecFile(file: string): Promise<Partial<ClusterSpecInput>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InputError(`--file: cannot read ${file}: ${errorMessage(error)}`, { path: file });
  }
  let document: unknown;
  try {
    document = YAML.parse(text);
  } catch (error) {
    throw new InputError(`--file: ${file} is not YAML or JSON: ${errorMessage(error)}`, { path: file });
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    throw new InputError(`--file: ${file} must hold a mapping (the cluster spec)`);
  return document as Partial<ClusterSpecInput>;
}

function describeAddons(addons: ClusterSummary['spec']['addons']): string {
  const parts: string[] = [addons.cni === 'none' ? 'no CNI (the site brings its own)' : addons.cni];
  if (!addons.kubeProxy) parts.push('no kube-proxy');
  if (!addons.coreDns) parts.push('no CoreDNS');
  if (addons.metallb) parts.push(`metallb ${addons.metallb.addresses.join(' ')}`);
  if (addons.vsphere)
    parts.push(`vsphere-cpi, vsphere-csi${addons.vsphere.storagePolicy ? ` (storage policy ${addons.vsphere.storagePolicy})` : ''}`);
  return parts.join(', ');
}

function describeCluster(cluster: ClusterSummary): string {
  const { spec } = cluster;
  const rows: [string, string | number][] = [
    ['id', cluster.id],
    ['name', cluster.name],
    ['kubernetes', spec.kubernetesVersion],
    [
      'endpoint',
      `${spec.controlPlaneEndpoint.vip}:${spec.controlPlaneEndpoint.port}${spec.controlPlaneEndpoint.interface ? ` on ${spec.controlPlaneEndpoint.interface}` : ''}`,
    ],
    ['control plane', `${spec.controlPlaneNodes} nodes`],
    ['pools', spec.pools.map((p) => p.name).join(', ')],
    ['pod / service CIDR', `${spec.podCidr} / ${spec.serviceCidr}`],
    ['add-ons', describeAddons(spec.addons)],
    [
      'node runtime',
      `${spec.cgroupDriver} cgroup driver${spec.allowCgroupV1 ? ', cgroup v1 hosts allowed' : ''}; images from ${spec.imageRepository ?? 'registry.k8s.io'}`,
    ],
    ['node token TTL', `${spec.nodeTokenTtlSeconds} s`],
    ['leader lease TTL', `${spec.leaseTtlSeconds} s`],
    ['virtual_router_id', cluster.virtualRouterId],
    ['CA cert hash', cluster.caCertHash],
    ['nodes', cluster.nodes],
    ['initialized', cluster.initialized ? 'yes' : 'no'],
  ];
  return renderFields(rows);
}
