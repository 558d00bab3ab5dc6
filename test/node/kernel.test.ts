import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IMAGE_KERNEL_DIR, imageKernelFiles } from '../../scripts/image-kernel-files.ts';

describe('kernel prerequisites', () => {
  it('are installed by the image build as the agent writes them (else: node scripts/write-kernel-files.ts)', () => {
    const files = imageKernelFiles();
    for (const [file, text] of Object.entries(files)) {
      expect(readFileSync(path.join(IMAGE_KERNEL_DIR, file), 'utf8'), file).toBe(text);
    }
    const installed = readdirSync(IMAGE_KERNEL_DIR, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    expect(installed.map((entry) => `/${path.relative(IMAGE_KERNEL_DIR, path.join(entry.parentPath, entry.name))}`).sort()).toEqual(
      Object.keys(files).sort(),
    );
  });
});
