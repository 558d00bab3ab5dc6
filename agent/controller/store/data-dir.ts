import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { PkeError, errorMessage } from '../../core/errors.ts';
import { PKI_FILES, type PkiFile } from '../../protocol/api.ts';
import { writeDurably } from './durable-file.ts';
import { createCa, type CertifiedKey } from '../clusters/pki.ts';

/**
 * The controller's data directory (mode 0700):
 *
 *   ca.crt, ca.key            serving CA, made at first start and kept (nodes pin ca.crt); the HTTPS
 *                             certificate is issued from it at every start, for the current names,
 *                             and kept in memory only
 *   signing.key               32 random bytes: the HS256 key of every token
 *   admin.token               the admin bearer token (0600)
 *   state.json                clusters, nodes, leases, join slots, revocations (snapshot)
 *   state.journal             changes since the snapshot, one JSON record a line (see store.ts)
 *   controller.pid            the pid of the controller using this directory
 *   clusters/<id>/pki/...     the cluster's CAs and service-account keys, kubeadm's layout
 *   clusters/<id>/admin.conf  the kubeconfig the leader uploaded when its init was done
 *   clusters/<id>/vsphere.json the vCenter connection the admin set for the vSphere CPI and CSI
 *   clusters/<id>/backups/<backup>.db  etcd snapshots a control-plane node uploaded (controller/backups/)
 *
 * Every private file is 0600.
 */
export class DataDir {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  get caCert(): string {
    return this.file('ca.crt');
  }
  get caKey(): string {
    return this.file('ca.key');
  }
  get signingKey(): string {
    return this.file('signing.key');
  }
  get adminToken(): string {
    return this.file('admin.token');
  }
  get stateFile(): string {
    return this.file('state.json');
  }
  get pidFile(): string {
    return this.file('controller.pid');
  }
  clusterPkiFile(cluster: string, file: PkiFile): string {
    return this.file(`clusters/${cluster}/pki/${file}`);
  }
  adminKubeconfig(cluster: string): string {
    return this.file(`clusters/${cluster}/admin.conf`);
  }
  vsphereCredentials(cluster: string): string {
    return this.file(`clusters/${cluster}/vsphere.json`);
  }

  /** Where the etcd snapshots of a cluster are kept; `backup` is an id the controller made. */
  backupFile(cluster: string, backup: string): string {
    return this.file(`clusters/${cluster}/backups/${backup}.db`);
  }

  async ensure(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
  }

  /**
   * Claims the directory for this process: another live controller on the same state would
   * overwrite its writes. A pid file left by a process that is gone (or whose pid now belongs
   * to a program that is not a controller) is taken over.
   */
  async lock(): Promise<void> {
    const previous = Number((await readOptional(this.pidFile))?.trim());
    if (Number.isInteger(previous) && previous > 0 && previous !== process.pid && (await isController(previous))) {
      throw new PkeError(`another controller (pid ${previous}) is using ${this.dir}; stop it first`, { context: { path: this.pidFile } });
    }
    await writeFile(this.pidFile, `${process.pid}\n`, { mode: 0o644 });
  }

  async unlock(): Promise<void> {
    if ((await readOptional(this.pidFile))?.trim() === String(process.pid)) await rm(this.pidFile, { force: true });
  }

  async servingCa(): Promise<CertifiedKey> {
    const [certPem, keyPem] = await Promise.all([readOptional(this.caCert), readOptional(this.caKey)]);
    if (certPem !== undefined && keyPem !== undefined) return { certPem, keyPem };
    if (certPem !== undefined || keyPem !== undefined) {
      throw new PkeError(
        `${this.dir} has only one of ca.crt and ca.key; restore the other or remove both to make a new CA (every node config then needs rendering again)`,
      );
    }
    const ca = await createCa('pke-controller-ca');
    await writeDurably(this.caKey, ca.keyPem, 0o600);
    await writeDurably(this.caCert, ca.certPem, 0o644);
    return ca;
  }

  async signingKeyBytes(): Promise<Buffer> {
    const existing = await readOptionalBytes(this.signingKey);
    if (existing !== undefined) {
      if (existing.length !== 32)
        throw new PkeError(`${this.signingKey} must hold 32 bytes, it holds ${existing.length}`, { context: { path: this.signingKey } });
      return existing;
    }
    const key = randomBytes(32);
    await writeDurably(this.signingKey, key, 0o600);
    return key;
  }

  async readAdminToken(): Promise<string | undefined> {
    return (await readOptional(this.adminToken))?.trim();
  }

  async writeAdminToken(token: string): Promise<void> {
    await writeDurably(this.adminToken, `${token}\n`, 0o600);
  }

  async writeClusterPki(cluster: string, files: Record<PkiFile, string>): Promise<void> {
    await mkdir(path.dirname(this.clusterPkiFile(cluster, 'etcd/ca.crt')), { recursive: true, mode: 0o700 });
    for (const name of PKI_FILES) {
      await writeDurably(this.clusterPkiFile(cluster, name), files[name], name.endsWith('.key') ? 0o600 : 0o644);
    }
  }

  async readClusterPki(cluster: string): Promise<Record<PkiFile, string>> {
    const entries = await Promise.all(
      PKI_FILES.map(async (name) => {
        const file = this.clusterPkiFile(cluster, name);
        try {
          return [name, await readFile(file, 'utf8')] as const;
        } catch (error) {
          throw new PkeError(`cannot read ${file} of cluster ${cluster}: ${errorMessage(error)}`, { context: { path: file } });
        }
      }),
    );
    return Object.fromEntries(entries) as Record<PkiFile, string>;
  }

  async writeAdminKubeconfig(cluster: string, text: string): Promise<void> {
    await mkdir(path.dirname(this.adminKubeconfig(cluster)), { recursive: true, mode: 0o700 });
    await writeDurably(this.adminKubeconfig(cluster), text, 0o600);
  }

  async readAdminKubeconfig(cluster: string): Promise<string | undefined> {
    return readOptional(this.adminKubeconfig(cluster));
  }

  async writeVsphereCredentials(cluster: string, text: string): Promise<void> {
    await mkdir(path.dirname(this.vsphereCredentials(cluster)), { recursive: true, mode: 0o700 });
    await writeDurably(this.vsphereCredentials(cluster), text, 0o600);
  }

  async readVsphereCredentials(cluster: string): Promise<string | undefined> {
    return readOptional(this.vsphereCredentials(cluster));
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  return (await readOptionalBytes(file))?.toString('utf8');
}

async function readOptionalBytes(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function isController(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // Where /proc is there, a reused pid shows another command line.
  const cmdline = await readOptional(`/proc/${pid}/cmdline`).catch(() => undefined);
  return cmdline === undefined || cmdline.includes('controller');
}
