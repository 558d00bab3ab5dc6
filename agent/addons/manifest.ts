import { parseAllDocuments } from 'yaml';
import { PkeError } from '../core/errors.ts';
import { ownValue } from '../core/records.ts';

/** What the agent fills into a bundle's manifests: `{{ podCidr }}` and the like, inside quoted YAML strings. */
export type ManifestValues = Record<string, string>;

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

/** Replaces each `{{ name }}`; a placeholder without a value is a broken bundle, never left in. */
export function renderManifest(text: string, values: ManifestValues, file: string): string {
  return text.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name: string) => {
    const value = ownValue(values, name);
    if (value === undefined)
      throw new PkeError(`${file}: placeholder {{ ${name} }} has no value; the agent fills in ${Object.keys(values).join(', ')}`, {
        context: { path: file },
      });
    return value;
  });
}

/** Every document of a manifest file as a Kubernetes object; anything without apiVersion, kind and metadata.name is an error naming the file. */
export function parseObjects(text: string, file: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const [index, doc] of parseAllDocuments(text).entries()) {
    if (doc.errors.length > 0)
      throw new PkeError(`${file}: document ${index + 1} is not valid YAML: ${doc.errors[0]?.message}`, { context: { path: file } });
    const value = doc.toJS() as Partial<KubeObject> | null;
    if (value === null) continue;
    if (typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || typeof value.metadata?.name !== 'string') {
      throw new PkeError(`${file}: document ${index + 1} is not a Kubernetes object (needs apiVersion, kind and metadata.name)`, {
        context: { path: file },
      });
    }
    objects.push(value as KubeObject);
  }
  return objects;
}

const ROLLED_OUT_KINDS = new Set<string>(['DaemonSet', 'Deployment', 'StatefulSet']);

export function workloadsOf(objects: KubeObject[]): Workload[] {
  return objects
    .filter((o) => ROLLED_OUT_KINDS.has(o.kind))
    .map((o) => ({ kind: o.kind as Workload['kind'], name: o.metadata.name, namespace: o.metadata.namespace ?? 'default' }));
}
