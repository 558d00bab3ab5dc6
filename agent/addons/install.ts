import { PkeError, errorMessage } from '../core/errors.ts';
import type { AgentConfig } from '../config/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import type { VsphereCredentials } from '../protocol/api.ts';
import type { NodeApi } from '../protocol/node-api.ts';
import { readBundle, type AddonBundle } from './bundle.ts';
import { RENDERED_ADDONS_DIR, type AddonName } from './catalog.ts';
import { applyManifests, applySecretObjects, waitForRollout } from './kubectl.ts';
import { parseObjects, workloadsOf } from './manifest.ts';
import { renderMetallbPool } from './metallb-pool.ts';
import { renderAddon, type RenderedFile, type RenderValues } from './render.ts';
import { renderCpiConfig, renderCsiConfig, renderStorageClass } from './vsphere.ts';

export interface AddonResult {
  name: AddonName;
  version: string;
  objects: number;
  workloads: string[];
  ms: number;
}

interface PlannedAddon {
  name: AddonName;
  /** Objects carrying credentials, applied through stdin right after the bundle (before its rollout needs them). */
  secretObjects?: string;
  /** Applied once the bundle's workloads are rolled out (objects their webhooks or drivers serve). */
  after?: { file: string; content: string };
}

/**
 * The CNI first (nothing else schedules without it), then MetalLB when the cluster config gives
 * it addresses, then the vSphere CPI and CSI when the config asks for them.
 */
function planAddons(config: AgentConfig, vsphere: VsphereCredentials | undefined): PlannedAddon[] {
  const { cni } = config.addons;
  const plan: PlannedAddon[] = cni === 'none' ? [] : [{ name: cni }];
  const { metallb } = config.addons;
  if (metallb) plan.push({ name: 'metallb', after: { file: 'zz-pke-address-pool.yaml', content: renderMetallbPool(metallb.addresses) } });
  if (config.addons.vsphere && vsphere) {
    plan.push({ name: 'vsphere-cpi', secretObjects: renderCpiConfig(vsphere) });
    plan.push({
      name: 'vsphere-csi',
      secretObjects: renderCsiConfig(vsphere, config.cluster.id),
      after: { file: 'zz-pke-storage-class.yaml', content: renderStorageClass(config.addons.vsphere.storagePolicy) },
    });
  }
  return plan;
}

/** What the cluster config puts into the bundles: kubeadm's podSubnet and image mirror, the control-plane size. */
export function renderValues(config: AgentConfig): RenderValues {
  return {
    podCidr: config.kubernetes.podCidr,
    imageRepository: config.kubernetes.imageRepository,
    controlPlaneNodes: config.controlPlaneNodes,
  };
}

export interface InstallOptions {
  host: Host;
  log: Logger;
  config: AgentConfig;
  controller: NodeApi;
  rolloutTimeoutSeconds: number;
}

/**
 * Installs the planned add-ons in order. Every bundle is read and rendered, and the vCenter
 * connection fetched, before anything is applied: a node that lacks either, or holds a bundle
 * whose layout the rendering does not know, changes nothing in the cluster.
 */
export async function installAddons(options: InstallOptions): Promise<AddonResult[]> {
  const vsphere = options.config.addons.vsphere ? await fetchVsphere(options.controller) : undefined;
  const plan = planAddons(options.config, vsphere);
  const bundles = await Promise.all(plan.map((addon) => readBundle(options.host, addon.name)));
  const rendered = await Promise.all(bundles.map((bundle) => renderBundle(options, bundle)));
  const results: AddonResult[] = [];
  for (const [index, addon] of plan.entries()) results.push(await installOne(options, bundles[index]!, rendered[index]!, addon));
  return results;
}

async function renderBundle(options: InstallOptions, bundle: AddonBundle): Promise<RenderedFile[]> {
  const sources = await Promise.all(
    bundle.manifests.map(async (file) => ({
      file,
      path: `${bundle.dir}/${file}`,
      text: (await options.host.readText(`${bundle.dir}/${file}`)) ?? '',
    })),
  );
  return renderAddon(bundle.name, bundle.version, sources, renderValues(options.config));
}

async function fetchVsphere(controller: NodeApi): Promise<VsphereCredentials> {
  try {
    return await controller.vsphere();
  } catch (error) {
    throw new PkeError(
      `add-ons vsphere-cpi and vsphere-csi: could not get the vCenter connection from the controller: ${errorMessage(error)}`,
      { cause: error },
    );
  }
}

async function installOne(
  options: InstallOptions,
  bundle: AddonBundle,
  rendered: RenderedFile[],
  plan: PlannedAddon,
): Promise<AddonResult> {
  const { host } = options;
  const started = Date.now();
  const log = options.log.child({ addon: bundle.name, version: bundle.version });
  const outDir = `${RENDERED_ADDONS_DIR}/${bundle.name}`;
  const files: string[] = [];
  for (const { file, text } of rendered) {
    const target = `${outDir}/${file}`;
    await host.writeFile(target, text);
    files.push(target);
  }
  const objects = rendered.flatMap((r) => r.objects);
  const failed = (what: string, error: unknown) =>
    new PkeError(`add-on ${bundle.name} ${bundle.version}: ${what}: ${errorMessage(error)}`, {
      context: error instanceof PkeError ? error.context : {},
      cause: error,
    });
  const apply = async (what: string, action: () => Promise<string>) => {
    try {
      return changedObjects(await action());
    } catch (error) {
      throw failed(`kubectl apply of ${what} failed`, error);
    }
  };

  const changed = await apply('its manifests', () => applyManifests(host, files));
  log.info('addons.applied', { files: files.join(', '), objects: objects.length, changed });
  if (plan.secretObjects !== undefined) {
    const secrets = plan.secretObjects;
    const names = parseObjects(secrets, 'credentials').map((o) => `${o.kind.toLowerCase()}/${o.metadata.name}`);
    log.info('addons.applied', {
      objects: names.join(', '),
      changed: await apply(names.join(', '), () => applySecretObjects(host, secrets)),
    });
  }

  const workloads = workloadsOf(objects);
  for (const workload of workloads) {
    const target = `${workload.kind.toLowerCase()}/${workload.name}`;
    try {
      await waitForRollout(host, workload, options.rolloutTimeoutSeconds);
    } catch (error) {
      throw failed(`${target} in ${workload.namespace} did not roll out within ${options.rolloutTimeoutSeconds} s`, error);
    }
    log.info('addons.rolled-out', { workload: target, namespace: workload.namespace });
  }

  if (plan.after) {
    const target = `${outDir}/${plan.after.file}`;
    await host.writeFile(target, plan.after.content);
    log.info('addons.applied', { files: target, changed: await apply(target, () => applyManifests(host, [target])) });
  }
  const ms = Date.now() - started;
  log.info('addons.ready', { ms });
  return {
    name: bundle.name,
    version: bundle.version,
    objects: objects.length,
    workloads: workloads.map((w) => `${w.namespace}/${w.kind.toLowerCase()}/${w.name}`),
    ms,
  };
}

/** kubectl apply prints one `kind/name created|configured|unchanged` line per object. */
function changedObjects(applyOutput: string): number {
  return applyOutput.split('\n').filter((line) => line.trim() && !line.trimEnd().endsWith(' unchanged')).length;
}
