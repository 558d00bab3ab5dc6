import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ADDON_NAMES, ADDON_RELEASES, ADDON_VERSIONS, type AddonName } from '../../agent/addons/catalog.ts';
import { renderValues } from '../../agent/addons/install.ts';
import type { KubeObject } from '../../agent/addons/manifest.ts';
import { renderMetallbPool } from '../../agent/addons/metallb-pool.ts';
import { imagesOf, mirroredImage, renderAddon } from '../../agent/addons/render.ts';
import { renderInitConfig } from '../../agent/kube/kubeadm-config.ts';
import { upstreamBundles } from '../../scripts/addons/cache.ts';
import { PINS_FILE, readPins } from '../../scripts/addons/pins.ts';
import { sha256 } from '../../scripts/addons/sources.ts';
import { agentConfig } from '../helpers/standins.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const FIXTURE = path.join(REPO, 'test/fixtures/addons-subset');
const NODE = { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: 'eth0', ips: ['10.10.0.11'] };
const upstream = upstreamBundles();
const skipped = upstream.available ? '' : ` (skipped: ${upstream.reason})`;

function sourcesOf(root: string, name: AddonName) {
  const dir = path.join(root, name, ADDON_VERSIONS[name]);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => ({ file, path: path.join(dir, file), text: readFileSync(path.join(dir, file), 'utf8') }));
}

function rendered(root: string, name: AddonName, overrides: { podCidr?: string; imageRepository?: string } = {}): KubeObject[] {
  const config = agentConfig({ kubernetes: { version: '1.31.2', ...overrides } });
  return renderAddon(name, ADDON_VERSIONS[name], sourcesOf(root, name), renderValues(config)).flatMap((file) => file.objects);
}

// biome-ignore lint/suspicious/noExplicitAny: manifests read back for assertions, nested fields read without casts
function find(objects: KubeObject[], kind: string, name: string): KubeObject & Record<string, any> {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name}`);
  return found;
}

const calicoPool = (objects: KubeObject[]) =>
  (find(objects, 'DaemonSet', 'calico-node').spec.template.spec.containers as { name: string; env: { name: string; value?: string }[] }[])
    .find((c) => c.name === 'calico-node')!
    .env.filter((e) => e.name === 'CALICO_IPV4POOL_CIDR');

describe('the add-on catalog', () => {
  it('pins every add-on the agent knows, each file with an upstream URL, a sha256 and where that sha256 was computed', () => {
    const pins = readPins(PINS_FILE);
    expect(Object.keys(pins).sort()).toEqual([...ADDON_NAMES].sort());
    for (const name of ADDON_NAMES) {
      expect(pins[name].version).toBe(ADDON_VERSIONS[name]);
      for (const file of pins[name].files) {
        expect(file.sha256, `${name} ${file.file}`).toMatch(/^[0-9a-f]{64}$/);
        expect(file.url, `${name} ${file.file}`).toMatch(/^https:\/\//);
        expect(file.checksumFrom.length, `${name} ${file.file}`).toBeGreaterThan(20);
      }
    }
  });
});

describe.skipIf(!upstream.available)(`the upstream releases, as fetched by the image build${skipped}`, () => {
  const root = upstream.available ? upstream.dir : '';

  it('are the pinned files, byte for byte, with the images their manifests name in images.txt', () => {
    for (const name of ADDON_NAMES) {
      const release = ADDON_RELEASES[name];
      const dir = path.join(root, name, release.version);
      for (const file of release.files) expect(sha256(readFileSync(path.join(dir, file.file))), `${name} ${file.file}`).toBe(file.sha256);
      const listed = readFileSync(path.join(dir, 'images.txt'), 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'));
      const objects = sourcesOf(root, name).flatMap((s) => YAML.parseAllDocuments(s.text).map((d) => d.toJS() as KubeObject));
      expect(listed, name).toEqual(imagesOf(objects.filter(Boolean)));
      expect(listed.length, name).toBeGreaterThan(0);
    }
  });

  it("renders Calico's pool and Flannel's network from the pod CIDR kubeadm gets as networking.podSubnet", () => {
    const podCidr = '172.20.0.0/16';
    const config = agentConfig({ kubernetes: { version: '1.31.2', podCidr } });
    const kubeadm = YAML.parseAllDocuments(
      renderInitConfig({ config, node: NODE, bootstrapToken: { token: 'abcdef.0123456789abcdef', ttlSeconds: 7200 } }),
    ).map((d) => d.toJS());
    const podSubnet = kubeadm.find((doc) => doc.kind === 'ClusterConfiguration').networking.podSubnet;
    expect(podSubnet).toBe(podCidr);

    // Upstream ships the pool commented out: absent until rendered.
    const calicoText = sourcesOf(root, 'calico')[0]!.text;
    expect(calicoText).toMatch(/#\s+- name: CALICO_IPV4POOL_CIDR/);
    expect(calicoPool(rendered(root, 'calico', { podCidr }))).toEqual([{ name: 'CALICO_IPV4POOL_CIDR', value: podSubnet }]);

    const flannel = find(rendered(root, 'flannel', { podCidr }), 'ConfigMap', 'kube-flannel-cfg');
    const netConf = JSON.parse(flannel.data['net-conf.json']);
    expect(netConf.Network).toBe(podSubnet);
    expect(netConf.Backend).toEqual({ Type: 'vxlan' });
  });

  it("leaves out the CPI's example vsphere.conf and credentials (the leader applies its own) and keeps everything else", () => {
    const upstreamObjects = sourcesOf(root, 'vsphere-cpi').flatMap((s) =>
      YAML.parseAllDocuments(s.text).map((d) => d.toJS() as KubeObject),
    );
    const objects = rendered(root, 'vsphere-cpi');
    const names = (list: KubeObject[]) => list.filter(Boolean).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names(upstreamObjects)).toContain('Secret/vsphere-cloud-secret');
    expect(names(objects)).toEqual(
      names(upstreamObjects).filter((n) => n !== 'Secret/vsphere-cloud-secret' && n !== 'ConfigMap/vsphere-cloud-config'),
    );
  });

  it('runs the CSI controller on at most as many replicas as the cluster has control-plane nodes (upstream: 3, one per node)', () => {
    const replicas = (controlPlaneNodes?: number) => {
      const config = agentConfig({ kubernetes: { version: '1.31.2' }, ...(controlPlaneNodes ? { controlPlaneNodes } : {}) });
      const objects = renderAddon(
        'vsphere-csi',
        ADDON_VERSIONS['vsphere-csi'],
        sourcesOf(root, 'vsphere-csi'),
        renderValues(config),
      ).flatMap((file) => file.objects);
      return find(objects, 'Deployment', 'vsphere-csi-controller').spec.replicas;
    };
    expect([replicas(), replicas(1), replicas(2), replicas(3), replicas(5)]).toEqual([3, 1, 2, 3, 3]);
  });

  it("moves every image under the cluster's image repository when one is set, and no other field", () => {
    const repository = 'registry.example.net/mirror';
    for (const name of ADDON_NAMES) {
      const plain = rendered(root, name);
      const mirrored = rendered(root, name, { imageRepository: repository });
      const images = imagesOf(mirrored);
      expect(images.length, name).toBeGreaterThan(0);
      expect(
        images.every((image) => image.startsWith(`${repository}/`)),
        name,
      ).toBe(true);
      expect(images, name).toEqual(
        imagesOf(plain)
          .map((image) => mirroredImage(image, repository))
          .sort(),
      );
      const withoutImages = (objects: KubeObject[]) => JSON.stringify(objects).replaceAll(/"image":"[^"]*"/g, '');
      expect(withoutImages(mirrored), name).toBe(withoutImages(plain));
    }
  });

  it('renders every bundle into manifests that parse back to the same objects', () => {
    for (const name of ADDON_NAMES) {
      const config = agentConfig({ kubernetes: { version: '1.31.2' } });
      for (const file of renderAddon(name, ADDON_VERSIONS[name], sourcesOf(root, name), renderValues(config)))
        expect(
          YAML.parseAllDocuments(file.text)
            .map((d) => d.toJS())
            .filter(Boolean),
          `${name} ${file.file}`,
        ).toEqual(file.objects);
    }
  });
});

describe('rendering', () => {
  it('works the same on the trimmed test fixture, which is shaped like upstream', () => {
    expect(calicoPool(rendered(FIXTURE, 'calico', { podCidr: '172.21.0.0/16' }))).toEqual([
      { name: 'CALICO_IPV4POOL_CIDR', value: '172.21.0.0/16' },
    ]);
  });

  it('fails naming the add-on, its version and the file when upstream moved what it sets', () => {
    const files = [
      {
        file: '10-calico.yaml',
        path: '/opt/pke/addons/calico/v3.28.5/10-calico.yaml',
        text: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n',
      },
    ];
    expect(() => renderAddon('calico', 'v3.28.5', files, { podCidr: '10.244.0.0/16' })).toThrow(
      'add-on calico v3.28.5: no DaemonSet calico-node with a container calico-node (where CALICO_IPV4POOL_CIDR goes) in /opt/pke/addons/calico/v3.28.5/10-calico.yaml: the upstream layout changed',
    );
    expect(() =>
      renderAddon('flannel', 'v0.25.7', [{ file: '10-a.yaml', path: 'a.yaml', text: 'kind: ConfigMap\nmetadata:\n  name: x\n' }], {
        podCidr: '10.244.0.0/16',
      }),
    ).toThrow('a.yaml: document 1 is not a Kubernetes object (needs apiVersion, kind and metadata.name)');
  });

  it('moves an image under a mirror by replacing its registry host, keeping its path, tag and digest', () => {
    expect(mirroredImage('docker.io/calico/node:v3.28.5', 'mirror.example/k8s')).toBe('mirror.example/k8s/calico/node:v3.28.5');
    expect(mirroredImage('registry.k8s.io/sig-storage/csi-attacher:v4.5.1', 'm.example')).toBe('m.example/sig-storage/csi-attacher:v4.5.1');
    expect(mirroredImage('localhost:5000/a/b@sha256:00', 'm.example')).toBe('m.example/a/b@sha256:00');
    expect(mirroredImage('calico/node:v1', 'm.example')).toBe('m.example/calico/node:v1');
  });

  it('renders the MetalLB layer-2 pool from the configured addresses', () => {
    const objects = YAML.parseAllDocuments(renderMetallbPool(['198.51.100.240/28', '198.51.100.10-198.51.100.20'])).map(
      (d) => d.toJS() as KubeObject,
    );
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
