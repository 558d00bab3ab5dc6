import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { errorMessage } from '../core/errors.ts';
import { issuePath } from '../core/schema-issues.ts';

/**
 * A certificate, key or CA as a kubeconfig gives it: inline (`*-data`, base64 of the PEM) or as
 * a file (kubelet.conf names the kubelet's rotating client certificate,
 * /var/lib/kubelet/pki/kubelet-client-current.pem, for both its certificate and its key).
 */
export type KubeconfigMaterial = { pem: string } | { file: string };

/** The current context's API server and credentials. */
export interface KubeconfigEntry {
  server: string;
  ca?: KubeconfigMaterial;
  clientCert?: KubeconfigMaterial;
  clientKey?: KubeconfigMaterial;
  token?: string;
}

/** The same, with every file read: what a client needs to talk to the API. */
export interface KubeconfigAccess {
  server: string;
  caPem?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  token?: string;
}

export class KubeconfigError extends Error {}

const kubeconfigSchema = z.object({
  'current-context': z.string(),
  contexts: z.array(z.object({ name: z.string(), context: z.object({ cluster: z.string(), user: z.string() }) })),
  clusters: z.array(
    z.object({
      name: z.string(),
      cluster: z.object({
        server: z.url(),
        'certificate-authority-data': z.string().optional(),
        'certificate-authority': z.string().optional(),
      }),
    }),
  ),
  users: z.array(
    z.object({
      name: z.string(),
      user: z.object({
        'client-certificate-data': z.string().optional(),
        'client-key-data': z.string().optional(),
        'client-certificate': z.string().optional(),
        'client-key': z.string().optional(),
        token: z.string().optional(),
      }),
    }),
  ),
});

/** The current context's server and credentials; the message says what is missing or wrong. */
export function parseKubeconfig(text: string): KubeconfigEntry {
  let document: unknown;
  try {
    document = YAML.parse(text);
  } catch (error) {
    throw new KubeconfigError(`the kubeconfig is not YAML: ${errorMessage(error)}`);
  }
  const parsed = kubeconfigSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KubeconfigError(`the kubeconfig lacks ${issue ? issuePath(issue) : 'required fields'}${issue ? `: ${issue.message}` : ''}`);
  }
  const config = parsed.data;
  const context = config.contexts.find((c) => c.name === config['current-context'])?.context;
  if (!context) throw new KubeconfigError(`the kubeconfig's current-context "${config['current-context']}" is not among its contexts`);
  const cluster = config.clusters.find((c) => c.name === context.cluster)?.cluster;
  const user = config.users.find((u) => u.name === context.user)?.user;
  if (!cluster) throw new KubeconfigError(`the kubeconfig has no cluster "${context.cluster}"`);
  if (!user) throw new KubeconfigError(`the kubeconfig has no user "${context.user}"`);
  const material = (data: string | undefined, file: string | undefined): KubeconfigMaterial | undefined =>
    data !== undefined ? { pem: Buffer.from(data, 'base64').toString('utf8') } : file !== undefined ? { file } : undefined;
  const entry: KubeconfigEntry = {
    server: cluster.server.replace(/\/$/, ''),
    ca: material(cluster['certificate-authority-data'], cluster['certificate-authority']),
    clientCert: material(user['client-certificate-data'], user['client-certificate']),
    clientKey: material(user['client-key-data'], user['client-key']),
    token: user.token,
  };
  if (!(entry.clientCert && entry.clientKey) && entry.token === undefined) {
    throw new KubeconfigError(`the kubeconfig user "${context.user}" has neither a client certificate and key nor a token`);
  }
  return entry;
}

/**
 * Reads a kubeconfig and the files it names, through `readFile` (undefined: no such file). A
 * relative path is taken from the kubeconfig's directory, as kubectl does.
 */
export async function loadKubeconfig(file: string, readFile: (file: string) => Promise<string | undefined>): Promise<KubeconfigAccess> {
  const text = await readFile(file);
  if (text === undefined) throw new KubeconfigError(`${file} is missing`);
  let entry: KubeconfigEntry;
  try {
    entry = parseKubeconfig(text);
  } catch (error) {
    throw new KubeconfigError(`${file}: ${errorMessage(error)}`);
  }
  const read = async (what: string, material: KubeconfigMaterial | undefined): Promise<string | undefined> => {
    if (material === undefined || 'pem' in material) return material?.pem;
    const named = path.resolve(path.dirname(file), material.file);
    const content = await readFile(named);
    if (content === undefined) throw new KubeconfigError(`${file}: its ${what} ${named} is missing`);
    return content;
  };
  return {
    server: entry.server,
    caPem: await read('certificate-authority', entry.ca),
    clientCertPem: await read('client-certificate', entry.clientCert),
    clientKeyPem: await read('client-key', entry.clientKey),
    token: entry.token,
  };
}
