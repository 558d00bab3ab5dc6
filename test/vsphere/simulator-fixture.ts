import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import type { VsphereConnection } from '../../agent/controller/vsphere/client.ts';
import type { VsphereCredentialsInput } from '../../agent/protocol/api.ts';
import { scratchDir } from '../helpers/cli.ts';
import { type Simulator, simulatorBinary, simulatorMissing, startSimulator } from '../image/simulator.ts';

/**
 * The vCenter simulator (govmomi's, built from Debian's sources) with one user and a serving
 * certificate of a CA made here, so that TLS is verified as against a real vCenter.
 * Inventory: datacenter DC0, cluster DC0_C0, datastore LocalDS_0, VMs DC0_H0_VM0 and more.
 */

export const SIM_USER = 'pke@vsphere.local';
export const SIM_PASSWORD = 'sim-password-1';

export interface SimulatorFixture {
  sim: Simulator;
  caPem: string;
  host: string;
  port: number;
  connection: VsphereConnection;
  /** What `controller cluster vsphere` sets for a cluster that provisions on the simulator. */
  credentials: VsphereCredentialsInput;
  stop(): Promise<void>;
}

export const vsphereSkip = simulatorMissing();

export async function startSimulatorFixture(options: { listen?: string; prefix?: string[] } = {}): Promise<SimulatorFixture> {
  const binary = await simulatorBinary();
  const scratch = scratchDir('vcsim');
  const ca = await createCa('pke test vCenter CA');
  const listenHost = (options.listen ?? '127.0.0.1:0').split(':')[0]!;
  const leaf = await issueCertificate(ca, {
    keyType: 'ecdsa',
    commonName: 'vcenter',
    altNames: ['127.0.0.1', 'localhost', listenHost],
    usage: 'server',
    validDays: 30,
  });
  const certFile = path.join(scratch.dir, 'vcenter.crt');
  const keyFile = path.join(scratch.dir, 'vcenter.key');
  writeFileSync(certFile, leaf.certPem);
  writeFileSync(keyFile, leaf.keyPem, { mode: 0o600 });
  const sim = await startSimulator(binary.path, {
    listen: options.listen,
    username: SIM_USER,
    password: SIM_PASSWORD,
    certFile,
    keyFile,
    prefix: options.prefix,
  });
  const [host, port] = sim.server.split(':');
  return {
    sim,
    caPem: ca.certPem,
    host: host!,
    port: Number(port),
    connection: {
      server: host!,
      port: Number(port),
      username: SIM_USER,
      password: SIM_PASSWORD,
      datacenter: 'DC0',
      tls: { ca: ca.certPem },
    },
    credentials: { server: host!, port: Number(port), username: SIM_USER, password: SIM_PASSWORD, datacenters: ['DC0'], ca: ca.certPem },
    stop: async () => {
      await sim.stop();
      scratch.remove();
    },
  };
}
