// STAND-IN for containerd, for tests only: `--version` (PKE_STANDIN_CONTAINERD_VERSION, default
// 1.7.24; a 2.x version prints the v2 module path as containerd 2 does) and a minimal
// `config default`. The daemon itself does not run here; systemctl's stand-in keeps its state.
import { exitWith, recordCall } from './standin-common.ts';

const argv = process.argv.slice(2);
recordCall('containerd', argv);
const version = process.env.PKE_STANDIN_CONTAINERD_VERSION ?? '1.7.24';
const major = Number(version.split('.')[0]);

if (argv[0] === '--version' || argv[0] === '-v') {
  const module = major >= 2 ? 'github.com/containerd/containerd/v2' : 'github.com/containerd/containerd';
  process.stdout.write(`containerd ${module} v${version} 0000000000000000000000000000000000000000\n`);
} else if (argv[0] === 'config' && argv[1] === 'default') {
  process.stdout.write(
    major >= 2
      ? "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n"
      : 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n',
  );
} else {
  exitWith('containerd stand-in: only --version and `config default` are acted out', 1);
}
