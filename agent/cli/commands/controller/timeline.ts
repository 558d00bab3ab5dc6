import { InputError } from '../../../core/errors.ts';
import { timelineSvg } from '../../../controller/timeline/svg.ts';
import { commandContext } from '../../context.ts';
import type { TimelineArgs } from '../controller.ts';
import { adminClient } from './connect.ts';

/** The cluster's formation as a standalone SVG on stdout (`> formation.svg`); with --json, the timeline document. */
export async function timeline(args: TimelineArgs): Promise<void> {
  const ctx = commandContext(args);
  if (!Number.isInteger(args.width) || args.width < 480 || args.width > 20000)
    throw new InputError(`--width: expected a whole number of pixels from 480 to 20000, got ${args.width}`);
  const client = await adminClient(args);
  try {
    const answer = await client.timeline(args.cluster);
    ctx.print(ctx.json ? JSON.stringify(answer) : timelineSvg(answer, { width: args.width }));
  } finally {
    await client.close();
  }
}
