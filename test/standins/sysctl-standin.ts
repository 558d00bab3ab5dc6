// STAND-IN for procps sysctl, for tests only. The kernel's settings are files under
// PKE_ROOT/proc/sys (a test seeds the ones a fresh VM has; the modprobe stand-in adds the bridge
// ones with br_netfilter). Acts out `-n KEY...`, `-w KEY=VALUE...`, `-p [FILE...]` and
// `--system`; a key without its file fails as on a kernel without it (exit 255).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { exitWith, readNodeFile, recordCall, under, writeNodeFile } from './standin-common.ts';

const argv = process.argv.slice(2);
recordCall('sysctl', argv);

let failed = false;
const procPath = (key: string) => `/proc/sys/${key.replaceAll('.', '/')}`;

function read(key: string): string | undefined {
  const value = readNodeFile(procPath(key));
  if (value === undefined) {
    process.stderr.write(`sysctl: cannot stat ${procPath(key)}: No such file or directory\n`);
    failed = true;
  }
  return value?.trim();
}

function write(key: string, value: string): void {
  if (readNodeFile(procPath(key)) === undefined) {
    process.stderr.write(`sysctl: cannot stat ${procPath(key)}: No such file or directory\n`);
    failed = true;
    return;
  }
  writeNodeFile(procPath(key), `${value}\n`);
  process.stdout.write(`${key} = ${value}\n`);
}

/** `key = value` lines; `#` and `;` start comments; a leading `-` means "ignore if missing". */
function applyFile(file: string): void {
  if (!existsSync(file)) exitWith(`sysctl: cannot open "${file}": No such file or directory`, 255);
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const [left, ...right] = line.split('=');
    const optional = left?.trim().startsWith('-') ?? false;
    const key = (left ?? '').trim().replace(/^-/, '');
    if (optional && readNodeFile(procPath(key)) === undefined) continue;
    write(key, right.join('=').trim());
  }
}

const [flag, ...rest] = argv;
switch (flag) {
  case '-n':
    for (const key of rest) {
      const value = read(key);
      if (value !== undefined) process.stdout.write(`${value}\n`);
    }
    break;
  case '-w':
    for (const pair of rest) {
      const [key, value] = pair.split('=');
      if (!key || value === undefined) exitWith(`sysctl: "${pair}" must be of the form name=value`, 255);
      write(key, value);
    }
    break;
  case '-p':
    for (const file of rest.length > 0 ? rest : [under('/etc/sysctl.conf')]) applyFile(file);
    break;
  case '--system': {
    const dir = under('/etc/sysctl.d');
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.conf')).sort().map((f) => path.join(dir, f)) : [];
    if (existsSync(under('/etc/sysctl.conf'))) files.push(under('/etc/sysctl.conf'));
    for (const file of files) {
      process.stdout.write(`* Applying ${file} ...\n`);
      applyFile(file);
    }
    break;
  }
  default:
    exitWith('sysctl stand-in: only -n KEY, -w KEY=VALUE, -p [FILE] and --system are acted out', 255);
}
process.exit(failed ? 255 : 0);
