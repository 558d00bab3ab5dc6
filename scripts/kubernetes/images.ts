/**
 * The container images kubeadm's static pods and the kubelet need, made here from the binaries
 * built from their Go modules, since this machine reaches no image registry: one layer holding
 * the static binary, under the name kubeadm expects (registry.k8s.io/NAME:TAG), as a
 * docker-archive that `ctr -n k8s.io images import` takes. umoci writes the OCI image and
 * skopeo converts it (Debian's packages; both well kept, and neither needs a daemon). pause is
 * compiled from the C source that ships in the k8s.io/kubernetes module (build/pause/linux).
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { type KubernetesRelease, etcdBinDir, kubernetesBinDir, kubernetesCacheRoot } from './releases.ts';

export const IMAGE_REPOSITORY = 'registry.k8s.io';

export interface ImageSpec {
  /** The image's name under the repository, e.g. kube-apiserver. */
  name: string;
  tag: string;
  /** The binary put at /usr/local/bin/NAME (on PATH for the manifests' `command`). */
  binary: string;
  entrypoint?: string;
  user?: string;
}

/** Which images a control-plane node's containerd must hold; a worker needs only pause. */
export function imagesOf(release: KubernetesRelease): { controlPlane: ImageSpec[]; pause: ImageSpec } {
  const bin = kubernetesBinDir(release.version);
  const component = (name: string): ImageSpec => ({ name, tag: `v${release.version}`, binary: path.join(bin, name) });
  return {
    controlPlane: [
      component('kube-apiserver'),
      component('kube-controller-manager'),
      component('kube-scheduler'),
      { name: 'etcd', tag: `${release.etcd}-0`, binary: path.join(etcdBinDir(release.etcd), 'etcd') },
    ],
    pause: { name: 'pause', tag: release.pause, binary: pauseBinary(release), entrypoint: '/usr/local/bin/pause', user: '65535:65535' },
  };
}

export function imageReference(image: ImageSpec): string {
  return `${IMAGE_REPOSITORY}/${image.name}:${image.tag}`;
}

export function imageArchive(release: KubernetesRelease, image: ImageSpec): string {
  return path.join(kubernetesCacheRoot(), `v${release.version}`, 'images', `${image.name}-${image.tag}.tar`);
}

function pauseBinary(release: KubernetesRelease): string {
  return path.join(kubernetesBinDir(release.version), `pause-${release.pause}`);
}

type Run = (what: string, command: string[], cwd: string) => Promise<string>;

/**
 * Compiles pause from the module's source (static, so the image needs nothing else), then makes
 * every image archive that is missing or older than its binary.
 */
export async function buildImages(release: KubernetesRelease, moduleDir: string, run: Run): Promise<void> {
  const { controlPlane, pause } = imagesOf(release);
  if (!existsSync(pause.binary)) {
    const source = path.join(moduleDir, 'build/pause/linux/pause.c');
    const scratch = `${pause.binary}.${process.pid}.tmp`;
    await run(
      `pause ${release.pause}: cc`,
      ['cc', '-Os', '-static', `-DVERSION=${release.pause}`, '-o', scratch, source],
      path.dirname(scratch),
    );
    renameSync(scratch, pause.binary);
  }
  for (const image of [...controlPlane, pause]) {
    const archive = imageArchive(release, image);
    if (existsSync(archive) && statSync(archive).mtimeMs >= statSync(image.binary).mtimeMs) continue;
    await buildImage(image, archive, run);
    console.error(`kubernetes build: image ${imageReference(image)} made`);
  }
}

async function buildImage(image: ImageSpec, archive: string, run: Run): Promise<void> {
  const work = `${archive}.${process.pid}.d`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(path.dirname(archive), { recursive: true });
  mkdirSync(work, { recursive: true });
  const layout = path.join(work, 'oci');
  const ref = `${layout}:${image.name}`;
  const what = `image ${imageReference(image)}`;
  await run(`${what}: umoci init`, ['umoci', 'init', '--layout', layout], work);
  await run(`${what}: umoci new`, ['umoci', 'new', '--image', ref], work);
  await run(`${what}: umoci insert`, ['umoci', 'insert', '--image', ref, image.binary, `/usr/local/bin/${image.name}`], work);
  const config = ['--config.env', 'PATH=/usr/local/bin:/usr/bin:/bin'];
  if (image.entrypoint) config.push('--config.entrypoint', image.entrypoint);
  if (image.user) config.push('--config.user', image.user);
  await run(`${what}: umoci config`, ['umoci', 'config', '--image', ref, ...config], work);
  const unfinished = `${archive}.${process.pid}.tmp`;
  await run(
    `${what}: skopeo copy`,
    ['skopeo', 'copy', '--quiet', `oci:${ref}`, `docker-archive:${unfinished}:${imageReference(image)}`],
    work,
  );
  renameSync(unfinished, archive);
  rmSync(work, { recursive: true, force: true });
}

/** The archives a node's containerd imports at its first boot, as an air-gapped template holds them. */
export function archivesFor(release: KubernetesRelease, role: 'master' | 'worker'): string[] {
  const { controlPlane, pause } = imagesOf(release);
  return (role === 'master' ? [...controlPlane, pause] : [pause]).map((image) => imageArchive(release, image));
}
