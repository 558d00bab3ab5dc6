import { describe, expect, it } from 'vitest';
import { PkeError } from '../../agent/core/errors.ts';
import { parseUnitStates } from '../../agent/host/unit-state.ts';

const COMMAND = 'systemctl show --property=ActiveState,UnitFileState a b c';

describe('unit states from systemctl show', () => {
  it('answers as is-active and is-enabled would: reloading is active, static and alias are enabled, a missing unit is neither', () => {
    const stdout =
      'ActiveState=reloading\nUnitFileState=static\n\nActiveState=failed\nUnitFileState=alias\n\nActiveState=inactive\nUnitFileState=\n';
    expect(parseUnitStates(['a', 'b', 'c'], stdout, COMMAND)).toEqual({
      a: { active: true, enabled: true },
      b: { active: false, enabled: true },
      c: { active: false, enabled: false },
    });
  });

  it('takes masked, linked and disabled unit files as not enabled', () => {
    const stdout =
      'ActiveState=active\nUnitFileState=masked\n\nActiveState=active\nUnitFileState=linked\n\nActiveState=inactive\nUnitFileState=disabled\n';
    expect(Object.values(parseUnitStates(['a', 'b', 'c'], stdout, COMMAND)).map((state) => state.enabled)).toEqual([false, false, false]);
  });

  it('refuses an answer that does not have one block per unit, naming the command', () => {
    expect(() => parseUnitStates(['a', 'b', 'c'], 'ActiveState=active\nUnitFileState=enabled\n', COMMAND)).toThrow(
      new PkeError(`${COMMAND}: expected a block of properties for each of 3 units, got 1`, { context: { command: COMMAND } }),
    );
  });
});
