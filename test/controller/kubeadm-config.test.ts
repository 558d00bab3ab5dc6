import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { ClusterApiError, httpsClusterApi, parseAdminKubeconfig } from '../../agent/controller/kubernetes/cluster-api.ts';
import { kubeApiConnection } from '../../agent/kube/api-client.ts';
import { request } from '../../agent/net/https.ts';
import { scratchDir } from '../helpers/cli.ts';
import { controlPlaneBinaries, type RealApiServer, type RealEtcd, startApiServer, startEtcd } from '../helpers/real-control-plane.ts';
import { apiServerCredentials, startLoopbackApiServerStandin } from '../standins/apiserver-standin.ts';

/**
 * ClusterApi's kubeadm-config calls, the same assertions against the real kube-apiserver and
 * against the API server stand-in: that is how the stand-in's ConfigMaps (resourceVersion, 409
 * Conflict, 404 NotFound) are checked against the real thing.
 */
const skipReal = controlPlaneBinaries.available ? undefined : controlPlaneBinaries.reason;
if (skipReal) console.warn(`kubeadm-config tests against the real kube-apiserver skipped: ${skipReal}`);

type Pki = Awaited<ReturnType<typeof createClusterPki>>;

interface Target {
  /** admin.conf for it. */
  kubeconfig: string;
  close(): Promise<void>;
}

const CONFIG_MAPS = '/api/v1/namespaces/kube-system/configmaps';
const KUBEADM_CONFIG = `${CONFIG_MAPS}/kubeadm-config`;

/** A ClusterConfiguration as kubeadm's upload-config phase stores it. */
const CLUSTER_CONFIGURATION = `apiServer: {}
apiVersion: kubeadm.k8s.io/v1beta4
caCertificateValidityPeriod: 87600h0m0s
certificateValidityPeriod: 8760h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: 10.10.0.100:6443
controllerManager: {}
dns: {}
encryptionAlgorithm: RSA-2048
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: v1.36.3
networking:
  dnsDomain: cluster.local
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
proxy: {}
scheduler: {}
`;

async function realTarget(pki: Pki): Promise<Target> {
  const dir = scratchDir('kubeadm-config-real');
  let etcd: RealEtcd | undefined;
  let server: RealApiServer | undefined;
  try {
    etcd = await startEtcd(dir.dir, pki, ['e1']);
    server = await startApiServer(dir.dir, pki, etcd, []);
  } catch (error) {
    await server?.close();
    await etcd?.close();
    dir.remove();
    throw error;
  }
  const started = { etcd, server };
  return {
    kubeconfig: server.kubeconfig,
    close: async () => {
      await started.server.close();
      await started.etcd.close();
      dir.remove();
    },
  };
}

async function standinTarget(pki: Pki): Promise<Target> {
  const dir = scratchDir('kubeadm-config-standin');
  const ca = { certPem: pki['ca.crt'], keyPem: pki['ca.key'] };
  const { standin, kubeconfig } = await startLoopbackApiServerStandin(ca, dir.dir, 'v1.36.3');
  return {
    kubeconfig,
    close: async () => {
      await standin.close();
      dir.remove();
    },
  };
}

/** Requests as kubernetes-admin, the answer's JSON read back. */
function rawClient(kubeconfig: string) {
  const access = parseAdminKubeconfig(kubeconfig);
  const { pool, headers } = kubeApiConnection(access);
  return {
    call: async (method: 'GET' | 'POST' | 'PUT', pathname: string, body?: unknown) => {
      const answer = await request(`${access.server}${pathname}`, {
        pool,
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: 10_000,
      });
      // biome-ignore lint/suspicious/noExplicitAny: the API's JSON read back for assertions
      return { code: answer.statusCode, json: JSON.parse(answer.text) as Record<string, any> };
    },
    close: () => pool.close(),
  };
}
type RawClient = ReturnType<typeof rawClient>;

/**
 * An HTTPS proxy to the target that, before passing on a PUT of kubeadm-config, changes the
 * ConfigMap itself (imageRepository: registry-TAG-N.example.com at the Nth PUT), so that the PUT carries a stale resourceVersion: once, or
 * every time. It presents a serving certificate of the cluster CA, so admin.conf with its server
 * swapped trusts it.
 */
async function interferingProxy(pki: Pki, target: RawClient, every: boolean, tag: string) {
  const { serving } = await apiServerCredentials({ certPem: pki['ca.crt'], keyPem: pki['ca.key'] });
  let puts = 0;
  const server: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const forward = async () => {
        const method = req.method as 'GET' | 'PUT';
        const body = chunks.length > 0 ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown) : undefined;
        if (method === 'PUT' && req.url === KUBEADM_CONFIG) {
          puts += 1;
          if (every || puts === 1) {
            const current = (await target.call('GET', KUBEADM_CONFIG)).json;
            const imageRepository = `registry-${tag}-${puts}.example.com`;
            current.data.ClusterConfiguration = current.data.ClusterConfiguration.replace(
              /imageRepository: .*/,
              `imageRepository: ${imageRepository}`,
            );
            expect((await target.call('PUT', KUBEADM_CONFIG, current)).code).toBe(200);
          }
        }
        const answer = await target.call(method, req.url ?? '/', body);
        res.writeHead(answer.code, { 'content-type': 'application/json' }).end(JSON.stringify(answer.json));
      };
      forward().catch((error: unknown) => res.writeHead(502).end(String(error)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    puts: () => puts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const targets: { name: string; start: (pki: Pki) => Promise<Target>; skip: string | undefined }[] = [
  { name: 'the real kube-apiserver', start: realTarget, skip: skipReal },
  { name: 'the API server stand-in', start: standinTarget, skip: undefined },
];

describe.each(targets)('kubeadm-config through ClusterApi against $name', ({ start, skip }) => {
  let pki: Pki;
  let target: Target | undefined;
  let raw: RawClient;
  const api = () => httpsClusterApi(parseAdminKubeconfig(target?.kubeconfig ?? ''));
  const withApi = async <T>(kubeconfig: string, use: (clusterApi: ReturnType<typeof httpsClusterApi>) => Promise<T>) => {
    const clusterApi = httpsClusterApi(parseAdminKubeconfig(kubeconfig));
    try {
      return await use(clusterApi);
    } finally {
      await clusterApi.close();
    }
  };
  const clusterConfiguration = async () => (await raw.call('GET', KUBEADM_CONFIG)).json.data.ClusterConfiguration as string;

  beforeAll(async () => {
    if (skip) return;
    pki = await createClusterPki();
    target = await start(pki);
    raw = rawClient(target.kubeconfig);
  }, 120_000);
  afterAll(async () => {
    await raw?.close();
    await target?.close();
  });

  it.skipIf(skip)('names the ConfigMap when it is missing', async () => {
    const clusterApi = api();
    try {
      const url = `${parseAdminKubeconfig(target?.kubeconfig ?? '').server}${KUBEADM_CONFIG}`;
      const missing = {
        message: `the ConfigMap kube-system/kubeadm-config is missing (GET ${url} answered 404)`,
        detail: 'configmaps "kubeadm-config" not found',
        transient: false,
      };
      await expect(clusterApi.kubeadmKubernetesVersion()).rejects.toThrow(ClusterApiError);
      await expect(clusterApi.kubeadmKubernetesVersion()).rejects.toMatchObject(missing);
      await expect(clusterApi.setKubeadmKubernetesVersion('1.37.2')).rejects.toMatchObject(missing);
      expect(await raw.call('GET', KUBEADM_CONFIG)).toEqual({
        code: 404,
        json: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: 'configmaps "kubeadm-config" not found',
          reason: 'NotFound',
          details: { name: 'kubeadm-config', kind: 'configmaps' },
          code: 404,
        },
      });
    } finally {
      await clusterApi.close();
    }
  });

  it.skipIf(skip)('reads kubernetesVersion, sets it keeping the rest, and answers whether it changed', async () => {
    const created = await raw.call('POST', CONFIG_MAPS, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'kubeadm-config', namespace: 'kube-system' },
      data: { ClusterConfiguration: CLUSTER_CONFIGURATION },
    });
    expect(created.code).toBe(201);
    const clusterApi = api();
    try {
      expect(await clusterApi.kubeadmKubernetesVersion()).toBe('1.36.3');
      expect(await clusterApi.setKubeadmKubernetesVersion('1.37.2')).toBe(true);
      expect(await clusterApi.kubeadmKubernetesVersion()).toBe('1.37.2');
      expect(await clusterApi.setKubeadmKubernetesVersion('1.37.2')).toBe(false);
    } finally {
      await clusterApi.close();
    }
    const stored = (await raw.call('GET', KUBEADM_CONFIG)).json;
    expect(stored.data).toEqual({
      ClusterConfiguration: CLUSTER_CONFIGURATION.replace('kubernetesVersion: v1.36.3', 'kubernetesVersion: v1.37.2'),
    });
    expect(stored.metadata.uid).toBe(created.json.metadata.uid);
    expect(stored.metadata.resourceVersion).not.toBe(created.json.metadata.resourceVersion);
  });

  it.skipIf(skip)('refuses a PUT with a stale resourceVersion with 409 Conflict; one that changes nothing is no write', async () => {
    const read = (await raw.call('GET', KUBEADM_CONFIG)).json;
    const unchanged = await raw.call('PUT', KUBEADM_CONFIG, read);
    expect(unchanged.code).toBe(200);
    expect(unchanged.json.metadata.resourceVersion).toBe(read.metadata.resourceVersion);
    const labelled = await raw.call('PUT', KUBEADM_CONFIG, { ...read, metadata: { ...read.metadata, labels: { touched: 'yes' } } });
    expect(labelled.code).toBe(200);
    expect(labelled.json.metadata.resourceVersion).not.toBe(read.metadata.resourceVersion);
    expect(await raw.call('PUT', KUBEADM_CONFIG, read)).toEqual({
      code: 409,
      json: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message:
          'Operation cannot be fulfilled on configmaps "kubeadm-config": the object has been modified; please apply your changes to the latest version and try again',
        reason: 'Conflict',
        details: { name: 'kubeadm-config', kind: 'configmaps' },
        code: 409,
      },
    });
  });

  it.skipIf(skip)('reads again and retries a write that met a change made meanwhile, keeping that change', async () => {
    const proxy = await interferingProxy(pki, raw, false, 'once');
    try {
      const kubeconfig = (target?.kubeconfig ?? '').replace(/server: \S+/, `server: ${proxy.url}`);
      expect(await withApi(kubeconfig, (clusterApi) => clusterApi.setKubeadmKubernetesVersion('1.38.0'))).toBe(true);
      expect(proxy.puts()).toBe(2);
    } finally {
      await proxy.close();
    }
    const text = await clusterConfiguration();
    expect(text).toContain('kubernetesVersion: v1.38.0\n');
    expect(text).toContain('imageRepository: registry-once-1.example.com\n');
  });

  it.skipIf(skip)('gives up after a few conflicts in a row, saying so', async () => {
    const proxy = await interferingProxy(pki, raw, true, 'always');
    try {
      const kubeconfig = (target?.kubeconfig ?? '').replace(/server: \S+/, `server: ${proxy.url}`);
      const failure = withApi(kubeconfig, (clusterApi) => clusterApi.setKubeadmKubernetesVersion('1.39.0'));
      await expect(failure).rejects.toMatchObject({
        message: `PUT ${proxy.url}${KUBEADM_CONFIG} answered 409 5 times: kube-system/kubeadm-config kept changing under the write`,
        detail: expect.stringContaining('the object has been modified'),
        transient: true,
      });
      expect(proxy.puts()).toBe(5);
    } finally {
      await proxy.close();
    }
    expect(await clusterConfiguration()).toContain('kubernetesVersion: v1.38.0\n');
  });

  it.skipIf(skip)('names the ConfigMap when its ClusterConfiguration has no kubernetesVersion', async () => {
    const read = (await raw.call('GET', KUBEADM_CONFIG)).json;
    read.data.ClusterConfiguration = CLUSTER_CONFIGURATION.replace('kubernetesVersion: v1.36.3\n', '');
    expect((await raw.call('PUT', KUBEADM_CONFIG, read)).code).toBe(200);
    await expect(withApi(target?.kubeconfig ?? '', (clusterApi) => clusterApi.kubeadmKubernetesVersion())).rejects.toMatchObject({
      message: expect.stringMatching(
        /^the ClusterConfiguration in the ConfigMap kube-system\/kubeadm-config names no kubernetesVersion \(GET https:\/\/127\.0\.0\.1:\d+\/api\/v1\/namespaces\/kube-system\/configmaps\/kubeadm-config\)$/,
      ),
    });
  });
});
