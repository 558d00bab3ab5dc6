import { PkeError } from '../core/errors.ts';

/** What `systemctl is-active` and `systemctl is-enabled` would answer for a unit. */
export interface UnitState {
  active: boolean;
  enabled: boolean;
}

/** The properties `systemctl show --property=...` is asked for. */
export const UNIT_STATE_PROPERTIES = ['ActiveState', 'UnitFileState'] as const;

// The states for which systemctl's is-active and is-enabled exit 0 (systemctl-is-active.c, systemctl-is-enabled.c).
const ACTIVE_STATES = new Set(['active', 'reloading', 'refreshing']);
const ENABLED_STATES = new Set(['enabled', 'enabled-runtime', 'static', 'alias', 'indirect', 'generated']);

/**
 * Reads `systemctl show --property=ActiveState,UnitFileState UNIT...`: one block of
 * `KEY=VALUE` lines per unit, in argument order, blocks separated by a blank line. A unit that
 * does not exist answers `ActiveState=inactive` and an empty UnitFileState: neither active nor
 * enabled, as is-active and is-enabled would say.
 */
export function parseUnitStates<U extends string>(units: readonly U[], stdout: string, command: string): Record<U, UnitState> {
  const blocks = stdout.trim() === '' ? [] : stdout.trim().split(/\n[ \t]*\n/);
  if (blocks.length !== units.length) {
    throw new PkeError(`${command}: expected a block of properties for each of ${units.length} units, got ${blocks.length}`, {
      context: { command },
    });
  }
  return Object.fromEntries(
    units.map((unit, i) => {
      const properties = parseProperties(blocks[i] ?? '');
      const state: UnitState = {
        active: ACTIVE_STATES.has(properties.get('ActiveState') ?? ''),
        enabled: ENABLED_STATES.has(properties.get('UnitFileState') ?? ''),
      };
      return [unit, state];
    }),
  ) as Record<U, UnitState>;
}

function parseProperties(block: string): Map<string, string> {
  const properties = new Map<string, string>();
  for (const line of block.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) properties.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  return properties;
}
