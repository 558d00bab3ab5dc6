// STAND-IN for systemctl, for tests only. Unit state lives under
// PKE_ROOT/var/lib/pke-standins/systemd/ as UNIT.enabled and UNIT.active files; nothing is
// started (the lab runs real keepalived itself). The installed units are
// PKE_STANDIN_SYSTEMD_UNITS (default: containerd kubelet keepalived). Messages and exit codes
// follow systemctl: is-active 3 when inactive, is-enabled 1 when disabled, 5 for an unknown unit.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { exitWith, recordCall, STATE_DIR, under } from './standin-common.ts';

const argv = process.argv.slice(2);
recordCall('systemctl', argv);

const installed = (process.env.PKE_STANDIN_SYSTEMD_UNITS ?? 'containerd kubelet keepalived').split(/\s+/).filter(Boolean).map(unitName);
const flags = argv.filter((arg) => arg.startsWith('-'));
const [verb, ...names] = argv.filter((arg) => !arg.startsWith('-'));
const units = names.map(unitName);
const quiet = flags.includes('--quiet') || flags.includes('-q');
const now = flags.includes('--now');

function unitName(name: string): string {
  return /\.(service|socket|timer|target|mount)$/.test(name) ? name : `${name}.service`;
}

function stateFile(unit: string, state: 'enabled' | 'active'): string {
  return under(path.join(STATE_DIR, 'systemd', `${unit}.${state}`));
}

function is(unit: string, state: 'enabled' | 'active'): boolean {
  return existsSync(stateFile(unit, state));
}

function set(unit: string, state: 'enabled' | 'active', on: boolean): void {
  const file = stateFile(unit, state);
  mkdirSync(path.dirname(file), { recursive: true });
  if (on) writeFileSync(file, `${new Date().toISOString()}\n`);
  else rmSync(file, { force: true });
}

function requireUnits(action: string): void {
  if (units.length === 0) exitWith(`Too few arguments.`, 1);
  for (const unit of units) {
    if (!installed.includes(unit)) exitWith(`Failed to ${action} ${unit}: Unit ${unit} not found.`, 5);
  }
}

switch (verb) {
  case 'daemon-reload':
    break;
  case 'enable':
  case 'disable': {
    if (units.length === 0) exitWith('Too few arguments.', 1);
    for (const unit of units) {
      if (!installed.includes(unit)) exitWith(`Failed to ${verb} unit: Unit file ${unit} does not exist.`, 1);
      const link = `/etc/systemd/system/multi-user.target.wants/${unit}`;
      if (verb === 'enable' && !is(unit, 'enabled')) process.stderr.write(`Created symlink ${link} → /lib/systemd/system/${unit}.\n`);
      if (verb === 'disable' && is(unit, 'enabled')) process.stderr.write(`Removed "${link}".\n`);
      set(unit, 'enabled', verb === 'enable');
      if (now) set(unit, 'active', verb === 'enable');
    }
    break;
  }
  case 'start':
  case 'restart':
    requireUnits(verb);
    for (const unit of units) set(unit, 'active', true);
    break;
  case 'stop':
    for (const unit of units) {
      if (!installed.includes(unit)) exitWith(`Failed to stop ${unit}: Unit ${unit} not loaded.`, 5);
      set(unit, 'active', false);
    }
    break;
  case 'reload':
    requireUnits('reload');
    for (const unit of units) if (!is(unit, 'active')) exitWith(`${unit} is not active, cannot reload.`, 1);
    break;
  case 'reload-or-restart':
    requireUnits('reload-or-restart');
    for (const unit of units) set(unit, 'active', true);
    break;
  case 'try-restart':
    requireUnits('try-restart');
    break;
  case 'is-active': {
    const states = units.map((unit) => (is(unit, 'active') ? 'active' : 'inactive'));
    if (!quiet) process.stdout.write(states.map((s) => `${s}\n`).join(''));
    process.exit(states.every((s) => s === 'active') && states.length > 0 ? 0 : 3);
    break;
  }
  case 'is-enabled': {
    let code = 0;
    for (const unit of units) {
      if (!installed.includes(unit)) {
        process.stderr.write(`Failed to get unit file state for ${unit}: No such file or directory\n`);
        code = 1;
        continue;
      }
      const state = is(unit, 'enabled') ? 'enabled' : 'disabled';
      if (!quiet) process.stdout.write(`${state}\n`);
      if (state !== 'enabled') code = 1;
    }
    process.exit(units.length === 0 ? 1 : code);
    break;
  }
  default:
    exitWith(`Unknown command verb '${verb ?? ''}'.`, 1);
}
