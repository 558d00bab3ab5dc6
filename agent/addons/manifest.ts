import { parseAllDocuments } from 'yaml';
import { PkeError } from '../core/errors.ts';

/** A workload whose rollout the addons phase waits for. */
export interface Workload {
  kind: 'DaemonSet' | 'Deployment' | 'StatefulSet';
  name: string;
  namespace: string;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

/** One YAML document's value as a Kubernetes object; null for an empty document; an error naming the file otherwise. */
export function toKubeObject(value: unknown, file: string, index: number): KubeObject | null {
  if (value === null || value === undefined) return null;
  const object = value as Partial<KubeObject>;
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string' || typeof object.metadata?.name !== 'string') {
    throw new PkeError(`${file}: document ${index + 1} is not a Kubernetes object (needs apiVersion, kind and metadata.name)`, {
      context: { path: file },
    });
  }
  return object as KubeObject;
}

/** Every document of a manifest file as a Kubernetes object; anything without apiVersion, kind and metadata.name is an error naming the file. */
export function parseObjects(text: string, file: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const [index, doc] of parseAllDocuments(text).entries()) {
    if (doc.errors.length > 0)
      throw new PkeError(`${file}: document ${index + 1} is not valid YAML: ${doc.errors[0]?.message}`, { context: { path: file } });
    const object = toKubeObject(doc.toJS(), file, index);
    if (object) objects.push(object);
  }
  return objects;
}

const ROLLED_OUT_KINDS = new Set<string>(['DaemonSet', 'Deployment', 'StatefulSet']);

export function workloadsOf(objects: KubeObject[]): Workload[] {
  return objects
    .filter((o) => ROLLED_OUT_KINDS.has(o.kind))
    .map((o) => ({ kind: o.kind as Workload['kind'], name: o.metadata.name, namespace: o.metadata.namespace ?? 'default' }));
}
