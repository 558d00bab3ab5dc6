import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ADDON_NAMES, ADDON_VERSIONS, CNI_PLUGINS } from '../../agent/addons/catalog.ts';
import { manifestValues } from '../../agent/addons/install.ts';
import { parseObjects, renderManifest, type KubeObject } from '../../agent/addons/manifest.ts';
import { renderMetallbPool } from '../../agent/addons/metallb-pool.ts';
import { renderInitConfig } from '../../agent/kube/kubeadm-config.ts';
import { agentConfig } from '../helpers/standins.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const NODE = { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: 'eth0', ips: ['10.10.0.11'] };

function bundleFiles(name: string): string[] {
  const dir = path.join(REPO, 'addons', name, ADDON_VERSIONS[name as keyof typeof ADDON_VERSIONS]);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => path.join(dir, f));
}

function renderedObjects(name: string, podCidr: string): KubeObject[] {
  const values = manifestValues(agentConfig({ kubernetes: { version: '1.31.2', podCidr } }));
  return bundleFiles(name).flatMap((file) => parseObjects(renderManifest(readFileSync(file, 'utf8'), values, file), file));
}

// biome-ignore lint/suspicious/noExplicitAny: manifests read back for assertions, nested fields read without casts
function find(objects: KubeObject[], kind: string, name: string): KubeObject & Record<string, any> {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name}`);
  return found;
}

describe('the add-on bundle in addons/', () => {
  it('has exactly one directory per add-on, at the pinned version, each with manifests and images.txt', () => {
    expect(readdirSync(path.join(REPO, 'addons')).sort()).toEqual([...ADDON_NAMES].sort());
    for (const name of ADDON_NAMES) {
      expect(readdirSync(path.join(REPO, 'addons', name)), name).toEqual([ADDON_VERSIONS[name]]);
      expect(bundleFiles(name).length, name).toBeGreaterThan(0);
      const images = readFileSync(path.join(REPO, 'addons', name, ADDON_VERSIONS[name], 'images.txt'), 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'));
      expect(images.length, name).toBeGreaterThan(0);
    }
  });

  it('parses every manifest, as shipped, into Kubernetes objects with apiVersion, kind and metadata.name', () => {
    for (const name of ADDON_NAMES) {
      for (const file of bundleFiles(name)) {
        const docs = YAML.parseAllDocuments(readFileSync(file, 'utf8'));
        expect(docs.length, file).toBeGreaterThan(0);
        for (const doc of docs) {
          expect(doc.errors, file).toEqual([]);
          const object = doc.toJS() as KubeObject;
          expect(object, file).toMatchObject({
            apiVersion: expect.any(String),
            kind: expect.any(String),
            metadata: { name: expect.any(String) },
          });
        }
      }
    }
  });

  it('uses exactly the images listed in images.txt, at the pinned version', () => {
    for (const name of ADDON_NAMES) {
      const listed = readFileSync(path.join(REPO, 'addons', name, ADDON_VERSIONS[name], 'images.txt'), 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .sort();
      const used = new Set<string>();
      for (const file of bundleFiles(name))
        for (const match of readFileSync(file, 'utf8').matchAll(/^\s*image:\s*(\S+)/gm)) used.add(match[1]!);
      expect([...used].sort(), name).toEqual(listed);
      expect(
        listed.some((image) => image.endsWith(`:${ADDON_VERSIONS[name]}`)),
        name,
      ).toBe(true);
    }
  });

  it('renders each CNI with the pod CIDR kubeadm gets as networking.podSubnet', () => {
    const podCidr = '172.20.0.0/16';
    const config = agentConfig({ kubernetes: { version: '1.31.2', podCidr } });
    const kubeadm = YAML.parseAllDocuments(
      renderInitConfig({ config, node: NODE, bootstrapToken: { token: 'abcdef.0123456789abcdef', ttlSeconds: 7200 } }),
    ).map((d) => d.toJS());
    const podSubnet = kubeadm.find((doc) => doc.kind === 'ClusterConfiguration').networking.podSubnet;
    expect(podSubnet).toBe(podCidr);

    const calicoNode = find(renderedObjects('calico', podCidr), 'DaemonSet', 'calico-node');
    const env = calicoNode.spec.template.spec.containers[0].env as { name: string; value?: string }[];
    expect(env.find((e) => e.name === 'CALICO_IPV4POOL_CIDR')?.value).toBe(podSubnet);

    const flannel = find(renderedObjects('flannel', podCidr), 'ConfigMap', 'kube-flannel-cfg');
    expect(JSON.parse(flannel.data['net-conf.json']).Network).toBe(podSubnet);

    const cilium = find(renderedObjects('cilium', podCidr), 'ConfigMap', 'cilium-config');
    expect(cilium.data['cluster-pool-ipv4-cidr']).toBe(podSubnet);

    for (const cni of CNI_PLUGINS) {
      for (const file of bundleFiles(cni))
        expect(renderManifest(readFileSync(file, 'utf8'), manifestValues(config), file)).not.toMatch(/\{\{/);
    }
  });

  it('refuses a placeholder it has no value for, naming the file', () => {
    expect(() => renderManifest('value: "{{ serviceCidr }}"', { podCidr: '10.244.0.0/16' }, '/opt/pke/addons/x/v1/a.yaml')).toThrow(
      '/opt/pke/addons/x/v1/a.yaml: placeholder {{ serviceCidr }} has no value',
    );
  });

  it('refuses a placeholder named after an object built-in', () => {
    expect(() => renderManifest('value: "{{ constructor }}"', { podCidr: '10.244.0.0/16' }, 'a.yaml')).toThrow(
      'placeholder {{ constructor }} has no value',
    );
  });

  it('renders the MetalLB layer-2 pool from the configured addresses', () => {
    const objects = parseObjects(renderMetallbPool(['198.51.100.240/28', '198.51.100.10-198.51.100.20']), 'pool');
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'IPAddressPool/metallb-system/pke-default',
      'L2Advertisement/metallb-system/pke-default',
    ]);
    expect(objects[0]).toMatchObject({
      apiVersion: 'metallb.io/v1beta1',
      spec: { addresses: ['198.51.100.240/28', '198.51.100.10-198.51.100.20'] },
    });
    expect(objects[1]).toMatchObject({ spec: { ipAddressPools: ['pke-default'] } });
  });
});
