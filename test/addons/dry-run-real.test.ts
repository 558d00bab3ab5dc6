import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { ADDON_NAMES, ADDON_VERSIONS, type AddonName } from '../../agent/addons/catalog.ts';
import { renderValues } from '../../agent/addons/install.ts';
import { parseObjects } from '../../agent/addons/manifest.ts';
import { renderMetallbPool } from '../../agent/addons/metallb-pool.ts';
import { renderAddon } from '../../agent/addons/render.ts';
import { renderCpiConfig, renderCsiConfig, renderStorageClass } from '../../agent/addons/vsphere.ts';
import { upstreamBundles } from '../../scripts/addons/cache.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { scratchDir } from '../helpers/cli.ts';
import {
  controlPlaneBinaries,
  kubectlBinary,
  type RealApiServer,
  type RealEtcd,
  startApiServer,
  startEtcd,
} from '../helpers/real-control-plane.ts';
import { agentConfig } from '../helpers/standins.ts';

/**
 * Every rendered upstream bundle, and what the leader applies beside it, passes
 * `kubectl apply --dry-run=server` against a real kube-apiserver: admission, the schemas of the
 * built-in kinds and of the bundle's own CRDs, defaulting. Namespaces and CRDs go in first, for
 * real, as a real apply's first pass would have them (a dry run creates nothing).
 */

const upstream = upstreamBundles();
const skip = !controlPlaneBinaries.available
  ? controlPlaneBinaries.reason
  : !kubectlBinary.available
    ? kubectlBinary.reason
    : upstream.available
      ? undefined
      : upstream.reason;
if (skip) console.warn(`add-on dry-run tests skipped: ${skip}`);

const VSPHERE = {
  server: 'vcenter.example.net',
  username: 'k8s@vsphere.local',
  password: 'not-a-real-password',
  insecure: false,
  datacenters: ['DC0'],
  thumbprint: undefined,
};

/** What the leader applies after (or beside) each bundle, rendered from the cluster config. */
const EXTRAS: Partial<Record<AddonName, string[]>> = {
  metallb: [renderMetallbPool(['198.51.100.240/28', '198.51.100.10-198.51.100.20'])],
  'vsphere-cpi': [renderCpiConfig(VSPHERE)],
  'vsphere-csi': [renderCsiConfig(VSPHERE, 'cluster-1'), renderStorageClass('gold')],
};

describe.skipIf(skip)(
  `the rendered add-ons against a real kube-apiserver v${NEWEST_RELEASE.version}${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const scratch = scratchDir('addons-dry-run');
    let etcd: RealEtcd | undefined;
    let server: RealApiServer;

    beforeAll(async () => {
      const pki = await createClusterPki();
      etcd = await startEtcd(scratch.dir, pki, ['e1']);
      server = await startApiServer(scratch.dir, pki, etcd, []);
    }, 120_000);

    afterAll(async () => {
      await server?.close();
      await etcd?.close();
      scratch.remove();
    });

    it.each(ADDON_NAMES)(
      '%s: every object passes a server-side dry run (namespaces and CRDs first)',
      async (name) => {
        if (!upstream.available) return;
        const dir = path.join(upstream.dir, name, ADDON_VERSIONS[name]);
        const sources = readdirSync(dir)
          .filter((f) => f.endsWith('.yaml'))
          .sort()
          .map((file) => ({ file, path: path.join(dir, file), text: readFileSync(path.join(dir, file), 'utf8') }));
        const config = agentConfig({ kubernetes: { version: NEWEST_RELEASE.version, podCidr: '172.20.0.0/16' } });
        const rendered = renderAddon(name, ADDON_VERSIONS[name], sources, renderValues(config));
        const out = path.join(scratch.dir, name);
        const files = rendered.map(({ file, text }) => {
          const at = `${out}-${file}`;
          writeFileSync(at, text);
          return at;
        });
        const objects = rendered.flatMap((r) => r.objects);

        const first = objects.filter((o) => o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition');
        if (first.length > 0) {
          const firstFile = `${out}-first.yaml`;
          writeFileSync(firstFile, first.map((o) => YAML.stringify(o)).join('---\n'));
          const created = await server.kubectl(['apply', '-f', firstFile]);
          expect(created.exitCode, created.stderr).toBe(0);
          if (first.some((o) => o.kind === 'CustomResourceDefinition')) {
            const established = await server.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
            expect(established.exitCode, established.stderr).toBe(0);
          }
        }

        const dryRun = await server.kubectl(['apply', '--dry-run=server', ...files.flatMap((f) => ['-f', f])]);
        expect(dryRun.exitCode, dryRun.stderr).toBe(0);
        expect(dryRun.stdout.split('\n').filter((line) => line.endsWith('(server dry run)')).length).toBe(objects.length);

        for (const extra of EXTRAS[name] ?? []) {
          const result = await server.kubectl(['apply', '--dry-run=server', '-f', '-'], extra);
          expect(result.exitCode, result.stderr).toBe(0);
          expect(result.stdout.split('\n').filter((line) => line.endsWith('(server dry run)')).length).toBe(
            parseObjects(extra, `${name} extra`).length,
          );
        }
      },
      180_000,
    );
  },
);
