import { open, rename } from 'node:fs/promises';
import path from 'node:path';

/**
 * Temp file, fsync, rename over the target, fsync the directory: the old bytes or the new,
 * never half. The directory must exist.
 */
export async function writeDurably(file: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const temp = `${file}.tmp`;
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
