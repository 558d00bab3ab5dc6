// STAND-IN for modprobe, for tests only. Records the call and acts out the kernel's side: a
// loaded module appears under PKE_ROOT/sys/module/NAME, and br_netfilter brings its
// /proc/sys/net/bridge sysctls at the kernel's defaults (1).
import { existsSync, mkdirSync } from 'node:fs';
import { exitWith, recordCall, under, writeNodeFile } from './standin-common.ts';

const BRIDGE_SYSCTLS = ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables', 'bridge-nf-call-arptables'];

const argv = process.argv.slice(2);
recordCall('modprobe', argv);
const modules = argv.filter((arg) => !arg.startsWith('-'));
if (modules.length === 0 || argv.some((arg) => arg.startsWith('-') && arg !== '-q' && arg !== '--quiet')) {
  exitWith('modprobe stand-in: only `modprobe [-q] MODULE...` is acted out', 1);
}
for (const module of modules) {
  if (!/^[a-z0-9_-]+$/.test(module)) exitWith(`modprobe: FATAL: Module ${module} not found in directory /lib/modules/standin`, 1);
  mkdirSync(under(`/sys/module/${module.replaceAll('-', '_')}`), { recursive: true });
  if (module === 'br_netfilter') {
    for (const key of BRIDGE_SYSCTLS) {
      if (!existsSync(under(`/proc/sys/net/bridge/${key}`))) writeNodeFile(`/proc/sys/net/bridge/${key}`, '1\n');
    }
  }
}
