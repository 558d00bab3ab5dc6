import { readFile } from 'node:fs/promises';
import { Etcd3 } from 'etcd3';
import { InputError, PkeError, errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { TokenAuthority } from '../auth/tokens.ts';
import type { CertifiedKey } from '../clusters/pki.ts';
import type { DataDir } from './data-dir.ts';
import { writeDurably } from './durable-file.ts';
import { StoreConflict } from './entities.ts';
import { EtcdSecrets } from './etcd-secrets.ts';
import { EtcdStateStore } from './etcd-store.ts';
import { SecretBox } from './secret-box.ts';
import { emptyState } from './state.ts';

/**
 * The etcd backend of a controller replica: the state and the secrets of every replica live in
 * etcd under one prefix; the replica's own data dir keeps only its pid file and, for the CLI on
 * its host, copies of the serving CA certificate (ca.crt) and the admin token (admin.token).
 */

export interface EtcdOptions {
  /** Client URLs of the etcd members (http:// or https://). */
  urls: string[];
  /** PEM files: the CA that signed the members' certificates, this replica's client certificate and key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** The file (0600) of keys that seal the secrets in etcd (secret-box.ts). */
  secretKeyFile: string;
  /** Every key the controller writes starts with it; default `/pke-controller/`. */
  prefix?: string;
  /** Keys per transaction, at most the members' --max-txn-ops (default 128). */
  txnKeys?: number;
}

export const DEFAULT_ETCD_PREFIX = '/pke-controller/';

export interface EtcdBackend {
  store: EtcdStateStore;
  secrets: EtcdSecrets;
  ca: CertifiedKey;
  tokens: TokenAuthority;
  close(): Promise<void>;
}

export async function openEtcdBackend(options: EtcdOptions, dataDir: DataDir, log: Logger): Promise<EtcdBackend> {
  const box = await SecretBox.fromFile(options.secretKeyFile);
  const client = await connectEtcd(options);
  try {
    const root = client.namespace(options.prefix ?? DEFAULT_ETCD_PREFIX);
    const secrets = new EtcdSecrets(root, box);
    const resealed = await secrets.reseal();
    if (resealed > 0) log.info('store.etcd.resealed', { secrets: resealed });
    const ca = await secrets.servingCa();
    await writeDurably(dataDir.caCert, ca.certPem, 0o644);
    const tokens = await TokenAuthority.fromSecret(await secrets.signingKeyBytes());
    const store = await EtcdStateStore.open(root, () => emptyState(''), {
      txnKeys: options.txnKeys,
      warn: (event, fields) => log.warn(event, fields),
    });
    try {
      await adoptAdminToken(secrets, store, tokens, dataDir);
    } catch (error) {
      await store.close();
      throw error;
    }
    return {
      store,
      secrets,
      ca,
      tokens,
      close: async () => {
        await store.close();
        client.close();
      },
    };
  } catch (error) {
    client.close();
    throw error;
  }
}

/**
 * The admin token every replica shares: the one in etcd (the first replica's), made current
 * in the state if it is not, and copied to this replica's admin.token for the CLI.
 */
async function adoptAdminToken(secrets: EtcdSecrets, store: EtcdStateStore, tokens: TokenAuthority, dataDir: DataDir): Promise<void> {
  const token = await secrets.adminTokenOnce(async () => (await tokens.mintAdminToken()).token);
  const principal = await tokens.verify(token).catch((error: unknown) => {
    throw new PkeError(`the admin token in etcd does not verify with the signing key in etcd: ${errorMessage(error)}`);
  });
  if (principal.kind !== 'admin') throw new PkeError('the admin token in etcd is not an admin token');
  for (let attempt = 1; store.state.adminTokenId !== principal.jti; attempt += 1) {
    store.mutate((state, touch) => {
      state.adminTokenId = principal.jti;
      touch.root();
    });
    try {
      await store.durable();
    } catch (error) {
      // Another replica starting at the same time set it first: the loop sees what it set.
      if (!(error instanceof StoreConflict) || attempt >= 5) throw error;
    }
  }
  await dataDir.writeAdminToken(token);
}

async function connectEtcd(options: EtcdOptions): Promise<Etcd3> {
  if (options.urls.length === 0) throw new InputError('--etcd: give at least one etcd client URL');
  for (const url of options.urls) {
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) throw new InputError(`--etcd: ${url} is not an http(s)://host:port URL`);
  }
  const tls = options.urls.some((url) => url.startsWith('https://'));
  if ((options.certFile === undefined) !== (options.keyFile === undefined)) throw new InputError('--etcd-cert and --etcd-key go together');
  const read = async (flag: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (error) {
      throw new InputError(`${flag}: cannot read ${file}: ${errorMessage(error)}`, { path: file });
    }
  };
  const [ca, cert, key] = await Promise.all([
    read('--etcd-ca', options.caFile),
    read('--etcd-cert', options.certFile),
    read('--etcd-key', options.keyFile),
  ]);
  if (tls && ca === undefined) throw new InputError('--etcd-ca: https etcd URLs need the CA that signed the members');
  return new Etcd3({
    hosts: options.urls.map((url) => url.replace(/\/$/, '')),
    ...(tls && ca ? { credentials: { rootCertificate: ca, ...(cert && key ? { certChain: cert, privateKey: key } : {}) } } : {}),
    dialTimeout: 5000,
  });
}
