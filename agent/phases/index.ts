import type { Phase } from './phase.ts';
import { preflightPhase } from './preflight.ts';

/** The bootstrap, in order. `bootstrap --phase`, the runner and `status` all read this one list. */
export const PHASES: readonly Phase[] = [preflightPhase];

export function phaseNames(): string[] {
  return PHASES.map((phase) => phase.name);
}
