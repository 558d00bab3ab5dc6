import { type Document, isMap, isScalar, isSeq, parseAllDocuments, type YAMLMap } from 'yaml';
import { PkeError } from '../core/errors.ts';
import type { AddonName } from './catalog.ts';
import { toKubeObject, type KubeObject } from './manifest.ts';

/**
 * Renders the upstream release files as they are: the YAML documents are edited where the
 * cluster's settings go (comments and layout kept), never through placeholders of our own, so
 * a platform team can drop in a newer upstream file and the same rendering applies.
 */

/** What the cluster config puts into the add-ons: one source each. */
export interface RenderValues {
  /** kubeadm's networking.podSubnet. */
  podCidr: string;
  /** The cluster's image mirror (kubernetes.imageRepository): every image reference is moved under it. */
  imageRepository?: string | undefined;
  /** How many control-plane nodes the cluster has, when known. */
  controlPlaneNodes?: number | undefined;
}

export interface SourceFile {
  /** Where it was read, for errors. */
  path: string;
  /** Its name in the bundle. */
  file: string;
  text: string;
}

export interface RenderedFile {
  file: string;
  text: string;
  objects: KubeObject[];
}

interface Edit {
  /** Said in the error when no document of the bundle took the edit: the upstream layout changed. */
  what: string;
  apply(doc: Document, object: KubeObject, values: RenderValues): boolean;
}

/** Upstream's calico.yaml ships CALICO_IPV4POOL_CIDR commented out: set it on calico-node. */
const calicoPoolCidr: Edit = {
  what: 'DaemonSet calico-node with a container calico-node (where CALICO_IPV4POOL_CIDR goes)',
  apply(doc, object, values) {
    if (object.kind !== 'DaemonSet' || object.metadata.name !== 'calico-node') return false;
    const container = containersOf(doc, object).find((c) => c.get('name') === 'calico-node');
    if (!container) return false;
    let env = container.get('env');
    if (!isSeq(env)) {
      env = doc.createNode([]);
      container.set('env', env);
    }
    if (!isSeq(env)) return false;
    env.items = env.items.filter((item) => !(isMap(item) && item.get('name') === 'CALICO_IPV4POOL_CIDR'));
    env.add(doc.createNode({ name: 'CALICO_IPV4POOL_CIDR', value: values.podCidr }));
    return true;
  },
};

/** Flannel's network is the `Network` of net-conf.json in its ConfigMap. */
const flannelNetwork: Edit = {
  what: 'ConfigMap kube-flannel-cfg with data net-conf.json',
  apply(doc, object, values) {
    if (object.kind !== 'ConfigMap' || object.metadata.name !== 'kube-flannel-cfg') return false;
    const node = doc.getIn(['data', 'net-conf.json'], true);
    if (!isScalar(node) || typeof node.value !== 'string') return false;
    const netConf = JSON.parse(node.value) as Record<string, unknown>;
    netConf.Network = values.podCidr;
    node.value = `${JSON.stringify(netConf, null, 2)}\n`;
    return true;
  },
};

/**
 * Upstream runs the CSI controller as 3 replicas that must sit on distinct control-plane nodes
 * (required anti-affinity): on a smaller control plane its rollout could never finish. It runs
 * one replica per control-plane node, up to upstream's count.
 */
const csiControllerReplicas: Edit = {
  what: 'Deployment vsphere-csi-controller with spec.replicas',
  apply(doc, object, values) {
    if (object.kind !== 'Deployment' || object.metadata.name !== 'vsphere-csi-controller') return false;
    const replicas = doc.getIn(['spec', 'replicas'], true);
    if (!isScalar(replicas) || typeof replicas.value !== 'number') return false;
    if (values.controlPlaneNodes !== undefined && values.controlPlaneNodes < replicas.value) replicas.value = values.controlPlaneNodes;
    return true;
  },
};

/**
 * Objects of an upstream file that pke-agent replaces with its own: the CPI's example
 * vsphere.conf and credentials, which the leader applies from the controller's vCenter connection.
 */
const REPLACED: Partial<Record<AddonName, ReadonlyArray<{ kind: string; name: string }>>> = {
  'vsphere-cpi': [
    { kind: 'Secret', name: 'vsphere-cloud-secret' },
    { kind: 'ConfigMap', name: 'vsphere-cloud-config' },
  ],
};

const EDITS: Partial<Record<AddonName, Edit[]>> = {
  calico: [calicoPoolCidr],
  flannel: [flannelNetwork],
  'vsphere-csi': [csiControllerReplicas],
};

/** Renders every file of one add-on's bundle; an edit that found no place is an error naming the add-on. */
export function renderAddon(name: AddonName, version: string, files: SourceFile[], values: RenderValues): RenderedFile[] {
  const edits = EDITS[name] ?? [];
  const done = new Set<Edit>();
  const replaced = REPLACED[name] ?? [];
  const rendered = files.map((source) => {
    const docs: string[] = [];
    const objects: KubeObject[] = [];
    for (const [index, doc] of parseAllDocuments(source.text).entries()) {
      if (doc.errors.length > 0)
        throw new PkeError(`${source.path}: document ${index + 1} is not valid YAML: ${doc.errors[0]?.message}`, {
          context: { path: source.path },
        });
      const object = toKubeObject(doc.toJS(), source.path, index);
      if (!object) continue;
      if (replaced.some((r) => r.kind === object.kind && r.name === object.metadata.name)) continue;
      for (const edit of edits) if (edit.apply(doc, object, values)) done.add(edit);
      if (values.imageRepository) moveImages(doc, object, values.imageRepository);
      docs.push(doc.toString({ lineWidth: 0 }).replace(/^---\n/, ''));
      objects.push(doc.toJS() as KubeObject);
    }
    return { file: source.file, text: docs.join('---\n'), objects };
  });
  const missed = edits.filter((edit) => !done.has(edit));
  if (missed.length > 0)
    throw new PkeError(
      `add-on ${name} ${version}: no ${missed.map((e) => e.what).join(', ')} in ${files.map((f) => f.path).join(', ')}: the upstream layout changed`,
    );
  return rendered;
}

/** Every container image of an object's pod template, as written. */
export function imagesOf(objects: KubeObject[]): string[] {
  const images = new Set<string>();
  for (const object of objects) {
    const spec = podSpecOf(object.kind, object);
    if (!spec || typeof spec !== 'object') continue;
    for (const key of CONTAINER_LISTS) {
      const containers = (spec as Record<string, unknown>)[key];
      if (!Array.isArray(containers)) continue;
      for (const container of containers) {
        const image = (container as { image?: unknown }).image;
        if (typeof image === 'string') images.add(image);
      }
    }
  }
  return [...images].sort();
}

/**
 * An image reference under a mirror: the registry host is replaced, the repository path kept
 * (docker.io/calico/node:v3.28.5 → registry.example.net/k8s/calico/node:v3.28.5), as kubeadm's
 * imageRepository does for registry.k8s.io. A first component without a dot or colon (and not
 * localhost) is a Docker Hub path and kept whole.
 */
export function mirroredImage(image: string, repository: string): string {
  const [first, ...rest] = image.split('/');
  const hasRegistry = rest.length > 0 && first !== undefined && (first.includes('.') || first.includes(':') || first === 'localhost');
  return `${repository}/${hasRegistry ? rest.join('/') : image}`;
}

const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'] as const;

/** The path of an object's pod spec, by kind. */
function podSpecPath(kind: string): string[] | undefined {
  if (['DaemonSet', 'Deployment', 'StatefulSet', 'ReplicaSet', 'Job'].includes(kind)) return ['spec', 'template', 'spec'];
  if (kind === 'CronJob') return ['spec', 'jobTemplate', 'spec', 'template', 'spec'];
  if (kind === 'Pod') return ['spec'];
  return undefined;
}

function podSpecOf(kind: string, object: KubeObject): unknown {
  const specPath = podSpecPath(kind);
  let value: unknown = object;
  for (const key of specPath ?? []) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  return specPath ? value : undefined;
}

function containersOf(doc: Document, object: KubeObject, lists: readonly string[] = ['containers']): YAMLMap[] {
  const specPath = podSpecPath(object.kind);
  if (!specPath) return [];
  return lists.flatMap((list) => {
    const seq = doc.getIn([...specPath, list]);
    return isSeq(seq) ? seq.items.filter((item): item is YAMLMap => isMap(item)) : [];
  });
}

function moveImages(doc: Document, object: KubeObject, repository: string): void {
  for (const container of containersOf(doc, object, CONTAINER_LISTS)) {
    const image = container.get('image', true);
    if (isScalar(image) && typeof image.value === 'string') image.value = mirroredImage(image.value, repository);
  }
}
