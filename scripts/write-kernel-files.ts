// Writes the kernel-prerequisite files the image build installs (packer/scripts/50-kernel.sh)
// from their one source, agent/node/kernel.ts, under packer/scripts/kernel/ at their paths on
// the node. Run it after changing that module; test/node/kernel.test.ts fails until then.
//   node scripts/write-kernel-files.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { imageKernelFiles, IMAGE_KERNEL_DIR } from './image-kernel-files.ts';

for (const [file, text] of Object.entries(imageKernelFiles())) {
  const target = path.join(IMAGE_KERNEL_DIR, file);
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, text);
  console.log(`wrote ${path.relative(process.cwd(), target)}`);
}
