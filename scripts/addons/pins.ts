import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ADDON_NAMES, type AddonName, type AddonRelease } from '../../agent/addons/catalog.ts';

/** The repository's pin catalog, which agent/addons/catalog.ts imports. */
export const PINS_FILE = path.resolve(import.meta.dirname, '../../addons/pins.json');

const pinnedFile = z.strictObject({
  file: z.string().regex(/^\d\d-[a-z0-9.-]+\.yaml$/, 'expected a numbered bundle file name such as 10-calico.yaml'),
  url: z.url({ protocol: /^https?$/ }),
  path: z.string().min(1),
  /** Empty only while a pin is missing: the build then fails naming it. */
  sha256: z.string().regex(/^([0-9a-f]{64})?$/, 'expected 64 lower-case hex digits'),
  checksumFrom: z.string().min(1),
});

const release = z.strictObject({
  version: z.string().regex(/^v\d+\.\d+\.\d+$/, 'expected a release version such as v1.31.0'),
  module: z.strictObject({ path: z.string().min(1), version: z.string().min(1) }),
  files: z.array(pinnedFile).min(1),
});

export const pinsSchema = z.strictObject({
  about: z.string(),
  addons: z.strictObject(Object.fromEntries(ADDON_NAMES.map((name) => [name, release])) as Record<AddonName, typeof release>),
});
export type Pins = z.infer<typeof pinsSchema>;

/** A pins file, validated; the first problem names the file and the key path. */
export function readPins(file: string): Record<AddonName, AddonRelease> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new PinsError(`${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = pinsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new PinsError(`${file}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return parsed.data.addons;
}

/** Bad input: exit 2. */
export class PinsError extends Error {}
