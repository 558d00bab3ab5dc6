import type { VsphereCredentials } from '../../protocol/api.ts';
import type { VsphereConnection } from './client.ts';

/** The client's connection from what `cluster vsphere` stored: the VMs go into its first datacenter. */
export function vsphereConnection(credentials: VsphereCredentials): VsphereConnection {
  return {
    server: credentials.server,
    port: credentials.port,
    username: credentials.username,
    password: credentials.password,
    datacenter: credentials.datacenters[0]!,
    tls: { ca: credentials.ca, thumbprint: credentials.thumbprint, insecure: credentials.insecure },
  };
}
