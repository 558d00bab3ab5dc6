import { randomBytes } from 'node:crypto';
import type { Namespace } from 'etcd3';
import { PkeError, errorMessage } from '../../core/errors.ts';
import { PKI_FILES, type PkiFile } from '../../protocol/api.ts';
import { createCa, type CertifiedKey } from '../clusters/pki.ts';
import type { ClusterFiles } from './cluster-files.ts';
import type { SecretBox } from './secret-box.ts';

/**
 * The secrets and cluster files of controllers sharing etcd, each one key under `secret/`,
 * sealed with the replicas' secret key (secret-box.ts) before it leaves the process:
 *
 *   secret/serving-ca                 the serving CA (cert and key) every replica serves with
 *   secret/signing-key                the HS256 key of every token
 *   secret/admin-token                the admin bearer token
 *   secret/clusters/<id>/pki          the cluster's CAs and service-account keys
 *   secret/clusters/<id>/admin.conf   the kubeconfig its leader uploaded
 *   secret/clusters/<id>/vsphere.json the vCenter connection
 *
 * Made-once values (CA, signing key, admin token) are created with a transaction that writes
 * only when the key does not exist, so replicas starting together agree on one.
 */
export class EtcdSecrets implements ClusterFiles {
  private readonly kv: Namespace;
  private readonly box: SecretBox;

  constructor(client: Namespace, box: SecretBox) {
    this.kv = client.namespace('secret/');
    this.box = box;
  }

  async servingCa(): Promise<CertifiedKey> {
    const made = await this.createOnce('serving-ca', async () => Buffer.from(JSON.stringify(await createCa('pke-controller-ca'))));
    return JSON.parse(made.toString('utf8')) as CertifiedKey;
  }

  async signingKeyBytes(): Promise<Buffer> {
    const key = await this.createOnce('signing-key', async () => randomBytes(32));
    if (key.length !== 32) throw new PkeError(`the signing key in etcd holds ${key.length} bytes, not 32`);
    return key;
  }

  /** The admin token: the one etcd holds, or `mint()`'s when it holds none. */
  async adminTokenOnce(mint: () => Promise<string>): Promise<string> {
    return (await this.createOnce('admin-token', async () => Buffer.from(await mint()))).toString('utf8');
  }

  async writeClusterPki(cluster: string, files: Record<PkiFile, string>): Promise<void> {
    await this.write(`clusters/${encodeURIComponent(cluster)}/pki`, Buffer.from(JSON.stringify(files)));
  }

  async readClusterPki(cluster: string): Promise<Record<PkiFile, string>> {
    const text = await this.read(`clusters/${encodeURIComponent(cluster)}/pki`);
    if (text === undefined) throw new PkeError(`etcd holds no PKI for cluster ${cluster}`);
    const files = JSON.parse(text.toString('utf8')) as Record<PkiFile, string>;
    for (const name of PKI_FILES)
      if (typeof files[name] !== 'string') throw new PkeError(`the PKI of cluster ${cluster} in etcd lacks ${name}`);
    return files;
  }

  async writeAdminKubeconfig(cluster: string, text: string): Promise<void> {
    await this.write(`clusters/${encodeURIComponent(cluster)}/admin.conf`, Buffer.from(text));
  }

  async readAdminKubeconfig(cluster: string): Promise<string | undefined> {
    return (await this.read(`clusters/${encodeURIComponent(cluster)}/admin.conf`))?.toString('utf8');
  }

  async writeVsphereCredentials(cluster: string, text: string): Promise<void> {
    await this.write(`clusters/${encodeURIComponent(cluster)}/vsphere.json`, Buffer.from(text));
  }

  async readVsphereCredentials(cluster: string): Promise<string | undefined> {
    return (await this.read(`clusters/${encodeURIComponent(cluster)}/vsphere.json`))?.toString('utf8');
  }

  /**
   * Seals again with the first key every secret sealed with another (after a key was added at
   * the top of the key file); each only if it did not change meanwhile. Returns how many.
   */
  async reseal(): Promise<number> {
    const all = await this.call('list the secrets', () => this.kv.getAll().exec());
    let count = 0;
    for (const item of all.kvs) {
      const name = item.key.toString();
      const text = item.value.toString();
      if (this.box.isCurrent(text)) continue;
      const sealed = this.box.seal(name, this.box.open(name, text));
      const result = await this.call(`re-seal ${name}`, () =>
        this.kv.if(name, 'Mod', '==', item.mod_revision).then(this.kv.put(name).value(sealed)).commit(),
      );
      if (result.succeeded) count += 1;
    }
    return count;
  }

  private async read(name: string): Promise<Buffer | undefined> {
    const text = await this.call(`read ${name}`, () => this.kv.get(name).string());
    return text === null ? undefined : this.box.open(name, text);
  }

  private async write(name: string, value: Buffer): Promise<void> {
    await this.call(`write ${name}`, () => this.kv.put(name).value(this.box.seal(name, value)).exec());
  }

  /** The value under `name`, made by `make()` and stored when there is none (the first replica's wins). */
  private async createOnce(name: string, make: () => Promise<Buffer>): Promise<Buffer> {
    const existing = await this.read(name);
    if (existing !== undefined) return existing;
    const value = await make();
    const result = await this.call(`create ${name}`, () =>
      this.kv
        .if(name, 'Create', '==', 0)
        .then(this.kv.put(name).value(this.box.seal(name, value)))
        .else(this.kv.get(name))
        .commit(),
    );
    if (result.succeeded) return value;
    const theirs = result.responses[0]?.response_range?.kvs?.[0]?.value;
    if (!theirs) throw new PkeError(`etcd refused to create ${name} and holds none`);
    return this.box.open(name, theirs.toString());
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof PkeError) throw error;
      throw new PkeError(`cannot ${what} in etcd: ${errorMessage(error)}`, { cause: error });
    }
  }
}
