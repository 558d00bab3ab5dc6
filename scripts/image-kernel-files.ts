import path from 'node:path';
import { MODULES_LOAD_FILE, MODULES_LOAD_TEXT, SYSCTL_FILE, SYSCTL_TEXT } from '../agent/node/kernel.ts';

/** Where the image build finds the kernel-prerequisite files, each at its path on the node. */
export const IMAGE_KERNEL_DIR = path.resolve(import.meta.dirname, '../packer/scripts/kernel');

/** The files, by their path on the node. */
export function imageKernelFiles(): Record<string, string> {
  return { [MODULES_LOAD_FILE]: MODULES_LOAD_TEXT, [SYSCTL_FILE]: SYSCTL_TEXT };
}
