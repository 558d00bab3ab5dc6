// STAND-IN for the kubelet binary, for tests only: `--version` answers; the kubelet itself cannot
// run here (kubeadm's stand-in writes the files the kubelet would use).
import { exitWith, recordCall } from './standin-common.ts';

const argv = process.argv.slice(2);
recordCall('kubelet', argv);
if (argv[0] !== '--version') exitWith('kubelet stand-in: only --version is acted out; the kubelet does not run here', 1);
const version = process.env.PKE_STANDIN_KUBEADM_VERSION ?? 'v1.31.2';
process.stdout.write(`Kubernetes ${version.startsWith('v') ? version : `v${version}`}\n`);
