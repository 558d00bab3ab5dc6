import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Host } from '../../agent/host/host.ts';
import { imageChecks, reportedVersion, versionMatchesPin } from '../../agent/preflight/image.ts';
import type { CheckResult } from '../../agent/preflight/check.ts';
import { REPO } from '../helpers/cli.ts';
import { runOk, systemCommand, titled } from './support.ts';

const STANDIN_DEBS = path.join(REPO, 'test/image/standin-debs/build-standin-debs.sh');
const dpkgDeb = systemCommand('dpkg-deb');
const missing = dpkgDeb ? undefined : 'dpkg-deb not installed (it builds and unpacks the stand-in packages)';

const MANIFEST = {
  schemaVersion: 1,
  builtAt: '2026-11-22T10:00:00Z',
  versions: { kubernetes: '1.31.2', containerd: '1.6.20', runc: '1.1.5', crictl: '1.31.1', agent: '0.1.0' },
  packageSource: 'local',
  packages: { kubeadm: '1.31.2-1.1' },
};

describe('version pins', () => {
  it('match the pin itself and the pin with a Debian or semver suffix, nothing else', () => {
    expect(versionMatchesPin('v1.31.2', '1.31.2')).toBe(true);
    expect(versionMatchesPin('1.6.20~ds1', '1.6.20')).toBe(true);
    expect(versionMatchesPin('1:1.6.20-1+deb12u3', '1.6.20')).toBe(true);
    expect(versionMatchesPin('1.1.5+ds1', '1.1.5')).toBe(true);
    expect(versionMatchesPin('1.6.201', '1.6.20')).toBe(false);
    expect(versionMatchesPin('1.31.1', '1.31.2')).toBe(false);
  });

  it('find the version in what each tool prints', () => {
    expect(reportedVersion('Kubernetes v1.31.2\n')).toBe('1.31.2');
    expect(reportedVersion('containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3')).toBe('1.6.20~ds1');
    expect(reportedVersion('runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8')).toBe('1.1.5+ds1');
    expect(reportedVersion('pke-agent 0.1.0 (commit abc123, node 24.21.0)')).toBe('0.1.0');
    expect(reportedVersion('no version here')).toBeUndefined();
  });
});

/**
 * A finished image laid out under a scratch root: the stand-in kubeadm/kubelet/kubectl/crictl
 * packages unpacked into it, small scripts for the other binaries, and the files the build
 * writes. Each test breaks one thing and expects exactly that check to fail.
 */
describe.skipIf(missing)(titled('imageChecks on an image under --root', missing), () => {
  let debs: string;
  let root: string;

  beforeAll(async () => {
    debs = mkdtempSync(path.join(tmpdir(), 'pke-standin-debs-'));
    await runOk('bash', [STANDIN_DEBS, debs, '1.31.2', '1.31.1']);
    return () => rmSync(debs, { recursive: true, force: true });
  });

  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  async function goodImage(): Promise<Host> {
    root = mkdtempSync(path.join(tmpdir(), 'pke-image-root-'));
    for (const deb of readdirSync(debs)) await runOk(dpkgDeb!, ['-x', path.join(debs, deb), root]);
    script('/usr/bin/containerd', 'echo "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"');
    script('/usr/sbin/runc', 'printf "runc version 1.1.5+ds1\\ncommit: 1.1.5+ds1-1+deb12u1\\n"');
    script('/usr/local/bin/pke-agent', 'echo "pke-agent 0.1.0 (commit abc, node 24.21.0)"');
    script('/usr/sbin/keepalived', 'exit 0');
    script('/usr/bin/vmware-rpctool', 'exit 255');
    script('/usr/bin/cloud-init', 'exit 0');
    // systemctl stand-in: the kubelet is enabled when its wants link exists under the root.
    script(
      '/usr/bin/systemctl',
      '[ "$1 $2 $3" = "is-enabled --quiet kubelet" ] || exit 2\n[ -L "$PKE_ROOT/etc/systemd/system/multi-user.target.wants/kubelet.service" ]',
    );
    write('/etc/pke-agent/image.json', JSON.stringify(MANIFEST, null, 2));
    write('/etc/cloud/cloud.cfg', 'datasource_list: [ NoCloud, ConfigDrive, VMware, None ]\npreserve_hostname: false\n');
    for (const file of readdirSync(path.join(REPO, 'cloud-init/image')).filter((f) => f.endsWith('.cfg'))) {
      write(`/etc/cloud/cloud.cfg.d/${file}`, readFileSync(path.join(REPO, 'cloud-init/image', file), 'utf8'));
    }
    write('/etc/modules-load.d/pke-kubernetes.conf', '# comment\noverlay\nbr_netfilter\n');
    write(
      '/etc/sysctl.d/90-pke-kubernetes.conf',
      'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n',
    );
    write('/etc/machine-id', '');
    mkdirSync(path.join(root, 'var/lib/dbus'), { recursive: true });
    symlinkSync('/etc/machine-id', path.join(root, 'var/lib/dbus/machine-id'));
    write('/etc/ssh/sshd_config', '');
    mkdirSync(path.join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync('/lib/systemd/system/kubelet.service', path.join(root, 'etc/systemd/system/multi-user.target.wants/kubelet.service'));
    cpSync(path.join(REPO, 'test/fixtures/addons-subset'), path.join(root, 'opt/pke/addons'), { recursive: true });
    const bins = ['/usr/local/bin', '/usr/bin', '/usr/sbin'].map((d) => path.join(root, d));
    return new Host({ root, path: bins.join(':') });
  }

  function write(nodePath: string, content: string) {
    mkdirSync(path.dirname(path.join(root, nodePath)), { recursive: true });
    writeFileSync(path.join(root, nodePath), content);
  }

  function script(nodePath: string, body: string) {
    write(nodePath, `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(root, nodePath), 0o755);
  }

  function failures(results: CheckResult[]): Record<string, string> {
    return Object.fromEntries(results.filter((r) => !r.ok).map((r) => [r.name, r.detail]));
  }

  it('passes every check on a complete image', async () => {
    const results = await imageChecks(await goodImage());
    expect(failures(results)).toEqual({});
    expect(results.map((r) => r.name)).toEqual([
      'image manifest',
      'kubeadm',
      'kubelet',
      'kubectl',
      'containerd',
      'runc',
      'crictl',
      'pke-agent',
      'keepalived',
      'open-vm-tools',
      'cloud-init',
      'cloud-init datasource',
      'cloud-init hostname',
      'cloud-init /etc/hosts',
      'cloud-init state',
      'kernel modules',
      'sysctl',
      'machine-id',
      'ssh host keys',
      'kubelet enabled',
      'add-on bundle',
    ]);
    expect(results.find((r) => r.name === 'kubectl')?.detail).toMatch(/reports 1\.31\.2 \(pinned 1\.31\.2\)/);
    expect(results.find((r) => r.name === 'cloud-init datasource')?.detail).toMatch(/99-pke-datasource\.cfg/);
  });

  it('names kubeadm, and the version expected, when kubeadm is missing', async () => {
    const host = await goodImage();
    unlinkSync(path.join(root, 'usr/bin/kubeadm'));
    const failed = failures(await imageChecks(host));
    expect(Object.keys(failed)).toEqual(['kubeadm']);
    expect(failed.kubeadm).toMatch(/^kubeadm is not on PATH \(.*\); expected kubeadm 1\.31\.2$/);
  });

  it('says which version a binary reports and which the manifest pins', async () => {
    const host = await goodImage();
    script('/usr/bin/kubelet', 'echo "Kubernetes v1.30.6"');
    script('/usr/bin/containerd', 'echo "containerd containerd.io 1.7.22 7f7fdf5"');
    script('/usr/sbin/runc', 'echo "runc: cannot exec" >&2; exit 3');
    const failed = failures(await imageChecks(host));
    expect(failed.kubelet).toMatch(/kubelet reports 1\.30\.6; the image manifest pins kubernetes 1\.31\.2/);
    expect(failed.containerd).toMatch(/reports 1\.7\.22; the image manifest pins containerd 1\.6\.20/);
    expect(failed.runc).toMatch(/`runc --version` failed: .*exited 3: runc: cannot exec; expected it to report 1\.1\.5/);
    expect(Object.keys(failed).sort()).toEqual(['containerd', 'kubelet', 'runc']);
  });

  it('fails on a missing or invalid manifest and still checks the binaries are there', async () => {
    const host = await goodImage();
    rmSync(path.join(root, 'etc/pke-agent/image.json'));
    let results = await imageChecks(host);
    expect(failures(results)).toEqual({ 'image manifest': expect.stringMatching(/\/etc\/pke-agent\/image\.json is missing/) });
    expect(results.find((r) => r.name === 'kubeadm')?.detail).toMatch(/no pinned version to compare/);

    write('/etc/pke-agent/image.json', JSON.stringify({ ...MANIFEST, versions: { ...MANIFEST.versions, kubernetes: 'latest' } }));
    results = await imageChecks(host);
    expect(failures(results)['image manifest']).toMatch(/does not validate: versions\.kubernetes: expected a version such as 1\.31\.2/);
  });

  it('fails when a later cloud-init file overrides the datasource pin, naming the file', async () => {
    const host = await goodImage();
    write('/etc/cloud/cloud.cfg.d/99-zz-installer.cfg', 'datasource_list: [ NoCloud, None ]\n');
    const failed = failures(await imageChecks(host));
    expect(failed).toEqual({
      'cloud-init datasource':
        'datasource_list is ["NoCloud","None"] (from /etc/cloud/cloud.cfg.d/99-zz-installer.cfg); expected [ VMware, None ]',
    });
  });

  it('fails on hostnames that would not follow the metadata, and warns on a rewritten /etc/hosts', async () => {
    const host = await goodImage();
    write('/etc/cloud/cloud.cfg.d/99-zz-site.cfg', 'preserve_hostname: true\nmanage_etc_hosts: true\n');
    const results = await imageChecks(host);
    expect(failures(results)['cloud-init hostname']).toMatch(/preserve_hostname is true .*expected false/);
    expect(results.find((r) => r.name === 'cloud-init /etc/hosts')).toMatchObject({ ok: false, severity: 'warning' });
  });

  it('fails when the build left machine identity behind: machine-id, dbus id, SSH host keys, cloud-init state', async () => {
    const host = await goodImage();
    write('/etc/machine-id', '0f3c1e2d4b5a69788796a5b4c3d2e1f0\n');
    write('/etc/ssh/ssh_host_ed25519_key', 'secret');
    write('/var/lib/cloud/instances/iid-build/boot-finished', '');
    const failed = failures(await imageChecks(host));
    expect(failed['machine-id']).toBe(
      '/etc/machine-id holds 0f3c1e2d4b5a69788796a5b4c3d2e1f0; expected an empty file, so that every clone gets its own id',
    );
    expect(failed['ssh host keys']).toMatch(/\/etc\/ssh\/ssh_host_ed25519_key remain; expected none/);
    expect(failed['cloud-init state']).toMatch(/\/var\/lib\/cloud\/instances\/iid-build; expected none \(cloud-init clean --logs --seed\)/);

    write('/etc/machine-id', '');
    unlinkSync(path.join(root, 'var/lib/dbus/machine-id'));
    write('/var/lib/dbus/machine-id', '0f3c1e2d4b5a69788796a5b4c3d2e1f0\n');
    expect(failures(await imageChecks(host))['machine-id']).toMatch(/\/var\/lib\/dbus\/machine-id holds the build's id/);
  });

  it('fails on missing kernel modules, wrong sysctls and a kubelet that is not enabled', async () => {
    const host = await goodImage();
    write('/etc/modules-load.d/pke-kubernetes.conf', 'overlay\n');
    write('/etc/sysctl.d/99-zz-site.conf', 'net.ipv4.ip_forward = 0\n');
    unlinkSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/kubelet.service'));
    const failed = failures(await imageChecks(host));
    expect(failed['kernel modules']).toMatch(/^br_netfilter not listed in \/etc\/modules-load\.d\/\*\.conf/);
    expect(failed.sysctl).toMatch(/net\.ipv4\.ip_forward = 0 \(in \/etc\/sysctl\.d\/99-zz-site\.conf\), expected 1/);
    expect(failed['kubelet enabled']).toMatch(/kubelet\.service is not enabled/);
  });

  it('fails when an add-on bundle is missing or incomplete, naming the add-on, its version and the path', async () => {
    const host = await goodImage();
    rmSync(path.join(root, 'opt/pke/addons/metallb'), { recursive: true });
    unlinkSync(path.join(root, 'opt/pke/addons/flannel/v0.25.7/images.txt'));
    const failed = failures(await imageChecks(host));
    expect(Object.keys(failed)).toEqual(['add-on bundle']);
    expect(failed['add-on bundle']).toContain('add-on metallb v0.14.8: its bundle /opt/pke/addons/metallb/v0.14.8 is missing');
    expect(failed['add-on bundle']).toContain('add-on flannel v0.25.7: /opt/pke/addons/flannel/v0.25.7/images.txt is missing');
  });

  it('fails when the guest tools, cloud-init or keepalived are absent', async () => {
    const host = await goodImage();
    for (const bin of ['usr/sbin/keepalived', 'usr/bin/vmware-rpctool', 'usr/bin/cloud-init']) unlinkSync(path.join(root, bin));
    const failed = failures(await imageChecks(host));
    expect(failed['open-vm-tools']).toMatch(/^vmware-rpctool or vmtoolsd not on PATH/);
    expect(failed.keepalived).toMatch(/^keepalived not on PATH/);
    expect(failed['cloud-init']).toMatch(/^cloud-init not on PATH/);
  });
});
