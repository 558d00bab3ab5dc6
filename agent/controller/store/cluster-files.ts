import type { PkiFile } from '../../protocol/api.ts';
import type { CertifiedKey } from '../clusters/pki.ts';

/**
 * The controller's secrets and per-cluster files, wherever the backend keeps them: files in the
 * data dir (data-dir.ts) or encrypted values in etcd (etcd-secrets.ts).
 */
export interface ClusterFiles {
  /** The serving CA nodes pin, made once and kept. */
  servingCa(): Promise<CertifiedKey>;
  /** The HS256 key of every token, made once and kept. */
  signingKeyBytes(): Promise<Buffer>;
  writeClusterPki(cluster: string, files: Record<PkiFile, string>): Promise<void>;
  readClusterPki(cluster: string): Promise<Record<PkiFile, string>>;
  writeAdminKubeconfig(cluster: string, text: string): Promise<void>;
  readAdminKubeconfig(cluster: string): Promise<string | undefined>;
  writeVsphereCredentials(cluster: string, text: string): Promise<void>;
  readVsphereCredentials(cluster: string): Promise<string | undefined>;
}
