import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDON_VERSIONS } from '../../agent/addons/catalog.ts';
import { imageManifestSchema } from '../../agent/preflight/image.ts';
import { ensureBuilt } from '../../scripts/ensure-built.ts';
import { aptSources, chrootMissing, createChroot, ensureRootfs, type Chroot } from './chroot.ts';
import { REPO } from '../helpers/cli.ts';
import { runOk, tailOf, titled, type Ran } from './support.ts';

/**
 * The provisioning scripts, run for real in a Debian bookworm chroot: base packages from the
 * Debian mirror, Debian's real containerd and runc, and stand-in kubeadm/kubelet/kubectl/
 * cri-tools .debs, all fed through the air-gapped "local packages" path. Then the built
 * dist/pke-agent checks the result from inside the chroot.
 */
const sources = aptSources();
const missing = await chrootMissing(sources);

const KUBERNETES = '1.31.2';
const CRICTL = '1.31.1';
const BUILD_DIR = '/tmp/pke-build';
const HELD = ['containerd', 'cri-tools', 'kubeadm', 'kubectl', 'kubelet', 'runc'];

describe.skipIf(missing)(titled('image provisioning in a Debian chroot', missing), () => {
  let chroot: Chroot;
  let env: Record<string, string>;
  let first: Ran;
  const timings: Record<string, number> = {};

  const provision = (steps: string[] = [], extra: Record<string, string> = {}) =>
    chroot.exec(['/bin/bash', `${BUILD_DIR}/scripts/provision.sh`, ...steps], { ...env, ...extra }, 15 * 60_000);
  const preflightImage = () => chroot.exec(['/usr/local/bin/pke-agent', 'preflight', '--image'], {}, 60_000);
  const inChroot = (nodePath: string) => chroot.file(nodePath);

  beforeAll(async () => {
    let t = Date.now();
    const agent = await ensureBuilt();
    timings.build = Date.now() - t;
    t = Date.now();
    const rootfs = await ensureRootfs(sources);
    timings[rootfs.built ? 'rootfs (built, cached now)' : 'rootfs (cached)'] = Date.now() - t;
    t = Date.now();
    chroot = await createChroot(rootfs);
    timings.extract = Date.now() - t;

    // What Packer's file provisioners upload, laid out the same way.
    const stage = inChroot(BUILD_DIR);
    cpSync(path.join(REPO, 'packer/scripts'), path.join(stage, 'scripts'), { recursive: true });
    cpSync(path.join(REPO, 'cloud-init/image'), path.join(stage, 'cloud-init'), { recursive: true });
    cpSync(path.join(REPO, 'test/fixtures/addons-subset'), path.join(stage, 'addons'), { recursive: true });
    cpSync(agent, path.join(stage, 'pke-agent'));
    // dist/ is shared with other builds; make sure what was staged is a whole executable.
    await runOk(path.join(stage, 'pke-agent'), ['version']);
    const packages = path.join(stage, 'packages');
    mkdirSync(packages, { recursive: true });
    await runOk('bash', [path.join(REPO, 'test/image/standin-debs/build-standin-debs.sh'), packages, KUBERNETES, CRICTL]);
    for (const deb of rootfs.runtimeDebs) cpSync(deb, path.join(packages, path.basename(deb)));

    // Pin containerd and runc to the upstream part of whatever Debian ships today.
    const upstream = (file: string) => /_(?:\d+:)?(\d+\.\d+\.\d+)/.exec(path.basename(file))?.[1] ?? '';
    const debOf = (name: string) => rootfs.runtimeDebs.find((f) => path.basename(f).startsWith(`${name}_`)) ?? '';
    env = {
      PKE_KUBERNETES_VERSION: KUBERNETES,
      PKE_CRICTL_VERSION: CRICTL,
      PKE_CONTAINERD_VERSION: upstream(debOf('containerd')),
      PKE_RUNC_VERSION: upstream(debOf('runc')),
      PKE_PACKAGE_SOURCE: 'local',
      PKE_BUILD_DIR: BUILD_DIR,
      // Nothing listens there: the pre-pull step must notice and skip, without leaving the machine.
      PKE_IMAGE_REGISTRY: '127.0.0.1:9',
    };
    t = Date.now();
    first = await provision();
    timings.provision = Date.now() - t;
    const steps = [...first.all.matchAll(/\[pke-image\] ([\w-]+): done in (\d+)s/g)].map((m) => `${m[1]} ${m[2]}s`);
    console.info(`image provisioning timings (ms): ${JSON.stringify(timings)}; steps: ${steps.join(', ')}`);
  }, 30 * 60_000);

  afterAll(async () => {
    await chroot?.remove();
    if (chroot) expect(existsSync(chroot.dir)).toBe(false);
  });

  it('provisions the image, every step, ending with a passing `pke-agent preflight --image`', () => {
    expect(first.exitCode, tailOf(first.all, 80)).toBe(0);
    for (const step of [
      'base-packages',
      'kubernetes-packages',
      'agent',
      'day-two-timers',
      'cloud-init',
      'kernel',
      'containerd',
      'kubelet',
      'addons',
      'prepull-images',
      'etcd-tools',
      'manifest',
      'sysprep',
      'selftest',
    ]) {
      expect(first.all).toMatch(new RegExp(`\\[pke-image\\] ${step}: done in \\d+s`));
    }
    expect(first.all).toContain('SKIPPED pre-pulling control-plane images: registry 127.0.0.1:9 is not reachable');
    expect(first.all).toMatch(/kubeadm\s+ok\s+\/usr\/bin\/kubeadm reports 1\.31\.2/);
  });

  it('installs the pinned packages from the local directory and holds them', async () => {
    const held = await chroot.exec(['apt-mark', 'showhold']);
    expect(held.stdout.split('\n').filter(Boolean).sort()).toEqual(HELD);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format fields
    const versions = await chroot.exec(['dpkg-query', '-W', '-f=${Package} ${Version}\\n', ...HELD]);
    expect(versions.stdout).toContain(`kubeadm ${KUBERNETES}-1.1`);
    expect(versions.stdout).toContain(`cri-tools ${CRICTL}-1.1`);
    expect(versions.stdout).toMatch(new RegExp(`containerd ${env.PKE_CONTAINERD_VERSION!.replaceAll('.', '\\.')}[~+-]`));
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format field
    const description = await chroot.exec(['dpkg-query', '-W', '-f=${Description}', 'kubeadm']);
    expect(description.stdout).toMatch(/^STAND-IN kubeadm/);
    // What Packer would have uploaded is what got installed (dist/ may be rebuilt meanwhile).
    expect(readFileSync(inChroot('/usr/local/bin/pke-agent')).equals(readFileSync(inChroot(`${BUILD_DIR}/pke-agent`)))).toBe(true);
    // keepalived's peers are kept in line by a timer running `pke-agent vip sync`.
    expect(readFileSync(inChroot('/etc/systemd/system/pke-vip-sync.service'), 'utf8')).toContain(
      'ExecStart=/usr/local/bin/pke-agent vip sync',
    );
    // (a link to an absolute path inside the chroot: look at the link itself)
    expect(
      lstatSync(inChroot('/etc/systemd/system/timers.target.wants/pke-vip-sync.timer'), { throwIfNoEntry: false })?.isSymbolicLink(),
    ).toBe(true);
    // Day two on control-plane nodes: certificates renewed daily, etcd snapshots when the controller has one due.
    expect(readFileSync(inChroot('/etc/systemd/system/pke-certs-renew.service'), 'utf8')).toContain(
      'ExecStart=/usr/local/bin/pke-agent certs renew',
    );
    expect(readFileSync(inChroot('/etc/systemd/system/pke-etcd-backup.service'), 'utf8')).toContain(
      'ExecStart=/usr/local/bin/pke-agent etcd backup',
    );
    for (const timer of ['pke-certs-renew.timer', 'pke-etcd-backup.timer']) {
      expect(lstatSync(inChroot(`/etc/systemd/system/timers.target.wants/${timer}`), { throwIfNoEntry: false })?.isSymbolicLink()).toBe(
        true,
      );
    }
  });

  it('writes the image manifest with the pinned versions', () => {
    const manifest = imageManifestSchema.parse(JSON.parse(readFileSync(inChroot('/etc/pke-agent/image.json'), 'utf8')));
    expect(manifest.versions).toMatchObject({
      kubernetes: KUBERNETES,
      crictl: CRICTL,
      containerd: env.PKE_CONTAINERD_VERSION,
      runc: env.PKE_RUNC_VERSION,
    });
    expect(manifest.versions.agent).toMatch(/^\d+\.\d+\.\d+/);
    expect(manifest).toMatchObject({ packageSource: 'local', imagesPrepulled: false, packages: { kubeadm: `${KUBERNETES}-1.1` } });
    expect(Date.now() - Date.parse(manifest.builtAt)).toBeLessThan(60 * 60_000);
  });

  it('bakes in the cloud-init datasource pin, kernel modules, sysctls and containerd config', () => {
    for (const file of readdirSync(path.join(REPO, 'cloud-init/image')).filter((f) => f.endsWith('.cfg'))) {
      expect(readFileSync(inChroot(`/etc/cloud/cloud.cfg.d/${file}`), 'utf8')).toBe(
        readFileSync(path.join(REPO, 'cloud-init/image', file), 'utf8'),
      );
    }
    expect(readFileSync(inChroot('/etc/cloud/cloud.cfg.d/99-pke-datasource.cfg'), 'utf8')).toMatch(
      /^datasource_list: \[ VMware, None \]$/m,
    );
    expect(readFileSync(inChroot('/etc/modules-load.d/pke-kubernetes.conf'), 'utf8')).toMatch(/^overlay\nbr_netfilter$/m);
    expect(readFileSync(inChroot('/etc/sysctl.d/90-pke-kubernetes.conf'), 'utf8')).toMatch(/^net\.bridge\.bridge-nf-call-iptables = 1$/m);
    expect(readFileSync(inChroot('/etc/containerd/config.toml'), 'utf8')).toMatch(/SystemdCgroup = true/);
  });

  it("leaves keepalived disabled: only a node's final VIP config is enabled, by its vip phase", async () => {
    const enabled = await chroot.exec(['systemctl', 'is-enabled', 'keepalived']);
    expect(enabled.stdout.trim()).toBe('disabled');
  });

  it('leaves kubelet enabled', async () => {
    expect(readlinkSync(inChroot('/etc/systemd/system/multi-user.target.wants/kubelet.service'))).toMatch(/kubelet\.service$/);
    const enabled = await chroot.exec(['systemctl', 'is-enabled', 'kubelet']);
    expect(enabled.stdout.trim()).toBe('enabled');
  });

  it('sysprep leaves no machine identity: empty machine-id, no SSH host keys, no cloud-init state, no logs', () => {
    expect(statSync(inChroot('/etc/machine-id')).size).toBe(0);
    expect(lstatSync(inChroot('/var/lib/dbus/machine-id')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(inChroot('/var/lib/dbus/machine-id'))).toBe('/etc/machine-id');
    expect(
      readdirSync(inChroot('/etc')).includes('ssh') ? readdirSync(inChroot('/etc/ssh')).filter((f) => f.startsWith('ssh_host_')) : [],
    ).toEqual([]);
    expect(existsSync(inChroot('/var/lib/cloud/instance'))).toBe(false);
    const logs = readdirSync(inChroot('/var/log'), { recursive: true, withFileTypes: true }).filter(
      (e) => e.isFile() && statSync(path.join(e.parentPath, e.name)).size > 0,
    );
    expect(logs.map((e) => path.join(e.parentPath, e.name))).toEqual([]);
  });

  it('`pke-agent preflight --image` run inside the chroot passes', async () => {
    const result = await preflightImage();
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).not.toMatch(/\bFAIL\b/);
  });

  it(
    'a rerun of the whole provisioning installs nothing, rewrites nothing, and passes',
    async () => {
      const watched = [
        '/etc/cloud/cloud.cfg.d/99-pke-datasource.cfg',
        '/etc/modules-load.d/pke-kubernetes.conf',
        '/etc/containerd/config.toml',
        '/usr/local/bin/pke-agent',
      ];
      const before = watched.map((f) => statSync(inChroot(f)).mtimeMs);
      const again = await provision();
      expect(again.exitCode, tailOf(again.all, 60)).toBe(0);
      expect(again.all).toContain('[pke-image] base-packages: all');
      expect(again.all).not.toMatch(/installing:|wrote \/etc\/(cloud|modules|sysctl|containerd|crictl)/);
      expect(watched.map((f) => statSync(inChroot(f)).mtimeMs)).toEqual(before);
    },
    5 * 60_000,
  );

  it('fails the build, naming the package and the directory, when a pinned .deb is missing', async () => {
    const result = await provision(['kubernetes-packages'], { PKE_CRICTL_VERSION: '1.99.0' });
    expect(result.exitCode).not.toBe(0);
    expect(result.all).toContain(`no .deb for cri-tools 1.99.0 in ${BUILD_DIR}/packages`);
    expect(result.all).toContain('step failed');
  });

  it('fails the addons step, naming the bundle and the file, when an uploaded add-on file differs from its pinned sha256', async () => {
    const bundle = `${BUILD_DIR}/addons/metallb/${ADDON_VERSIONS.metallb}/`;
    const file = inChroot(`${bundle}30-workloads.yaml`);
    const original = readFileSync(file);
    writeFileSync(file, Buffer.concat([original, Buffer.from('# changed after the fetch\n')]));
    try {
      const result = await provision(['addons']);
      expect(result.exitCode).not.toBe(0);
      expect(result.all).toContain('30-workloads.yaml: FAILED');
      expect(result.all).toContain(`${bundle}: a file differs from its pinned sha256`);
    } finally {
      writeFileSync(file, original);
    }
  });

  it("fails (exit 1, naming kubeadm) when kubeadm is removed, and so does the build's self-test step", async () => {
    unlinkSync(inChroot('/usr/bin/kubeadm'));
    const result = await preflightImage();
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/kubeadm\s+FAIL\s+kubeadm is not on PATH .*expected kubeadm 1\.31\.2/);
    expect(result.stderr).toMatch(/check\(s\) failed: kubeadm\b/);
    const failedRows = result.stdout.split('\n').filter((line) => /\bFAIL\b/.test(line));
    expect(failedRows).toHaveLength(1);

    const selftest = await provision(['selftest']);
    expect(selftest.exitCode).not.toBe(0);
    expect(selftest.all).toContain('selftest: ERROR: step failed');
  });

  it(
    'installs from a signed pkgs.k8s.io-style apt repository, picking the pinned version among others',
    async () => {
      // A flat repository inside the chroot (file://), signed with a key made for this test,
      // holding 1.31.3 and 1.31.20: the pin 1.31.3 must select 1.31.3 and not 1.31.20.
      const repo = inChroot('/srv/pke-repo');
      mkdirSync(repo, { recursive: true });
      for (const version of ['1.31.3', '1.31.20']) {
        await runOk('bash', [path.join(REPO, 'test/image/standin-debs/build-standin-debs.sh'), repo, version, CRICTL]);
      }
      writeFileSync(path.join(repo, 'Packages'), await packagesIndex(repo));
      const packagesBytes = readFileSync(path.join(repo, 'Packages'));
      writeFileSync(
        path.join(repo, 'Release'),
        `Origin: pke-agent tests\nLabel: stand-in kubernetes repository\nDate: ${new Date().toUTCString().replace('GMT', 'UTC')}\nSHA256:\n ${createHash('sha256').update(packagesBytes).digest('hex')} ${packagesBytes.length} Packages\n`,
      );
      const sign = await chroot.exec([
        '/bin/sh',
        '-ec',
        [
          'export GNUPGHOME=$(mktemp -d)',
          "gpg --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'pke test repository <repo@pke.invalid>' ed25519 sign never",
          'cd /srv/pke-repo',
          'gpg --batch --armor --export > Release.key',
          'gpg --batch --yes --pinentry-mode loopback --passphrase "" --clearsign -o InRelease Release',
          'gpgconf --kill all',
          'rm -rf "$GNUPGHOME"',
        ].join('\n'),
      ]);
      expect(sign.exitCode, sign.all).toBe(0);

      const apt = await provision(['kubernetes-packages'], {
        PKE_PACKAGE_SOURCE: 'apt',
        PKE_KUBERNETES_VERSION: '1.31.3',
        PKE_K8S_APT_REPO_URL: 'file:///srv/pke-repo/',
      });
      expect(apt.exitCode, tailOf(apt.all, 60)).toBe(0);
      expect(readFileSync(inChroot('/etc/apt/sources.list.d/pke-kubernetes.list'), 'utf8')).toBe(
        'deb [signed-by=/etc/apt/keyrings/pke-kubernetes.gpg] file:///srv/pke-repo/ /\n',
      );
      expect(apt.all).toMatch(/installing: kubeadm=1\.31\.3-1\.1 kubectl=1\.31\.3-1\.1 kubelet=1\.31\.3-1\.1/);
      expect((await chroot.exec(['kubeadm', 'version', '-o', 'short'])).stdout.trim()).toBe('v1.31.3');
      expect((await chroot.exec(['apt-mark', 'showhold'])).stdout.split('\n').filter(Boolean).sort()).toEqual(HELD);

      const unknown = await provision(['kubernetes-packages'], {
        PKE_PACKAGE_SOURCE: 'apt',
        PKE_KUBERNETES_VERSION: '1.31.4',
        PKE_K8S_APT_REPO_URL: 'file:///srv/pke-repo/',
      });
      expect(unknown.exitCode).not.toBe(0);
      expect(unknown.all).toMatch(/kubeadm 1\.31\.4 is not in the configured apt sources \(available: 1\.31\.20-1\.1 1\.31\.3-1\.1\)/);

      // The manifest follows the new pin, and the self-test agrees with what is installed.
      const rest = await provision(['manifest', 'selftest'], { PKE_PACKAGE_SOURCE: 'apt', PKE_KUBERNETES_VERSION: '1.31.3' });
      expect(rest.exitCode, tailOf(rest.all, 60)).toBe(0);
      expect(rest.all).toMatch(/kubelet\s+ok\s+\/usr\/bin\/kubelet reports 1\.31\.3 \(pinned 1\.31\.3\)/);
    },
    5 * 60_000,
  );
});

/** A Packages index for a flat repository: each .deb's control fields plus where and what it is. */
async function packagesIndex(dir: string): Promise<string> {
  const stanzas: string[] = [];
  for (const deb of readdirSync(dir)
    .filter((f) => f.endsWith('.deb'))
    .sort()) {
    const file = path.join(dir, deb);
    const control = (await runOk('dpkg-deb', ['-f', file])).stdout.trimEnd();
    const bytes = readFileSync(file);
    stanzas.push(`${control}\nFilename: ./${deb}\nSize: ${bytes.length}\nSHA256: ${createHash('sha256').update(bytes).digest('hex')}\n`);
  }
  return stanzas.join('\n');
}
