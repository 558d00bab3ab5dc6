import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox } from '../../agent/controller/store/secret-box.ts';
import { scratchDir } from '../helpers/cli.ts';

const dirs: (() => void)[] = [];
afterEach(() => {
  for (const remove of dirs.splice(0)) remove();
});

function keyFile(text: string, mode = 0o600): string {
  const dir = scratchDir('secret-box');
  dirs.push(dir.remove);
  const file = path.join(dir.dir, 'secret.key');
  writeFileSync(file, text, { mode });
  return file;
}

describe('secret box', () => {
  it('seals so that only its keys open, and only under the same name', async () => {
    const box = await SecretBox.fromFile(keyFile(SecretBox.newKeyFileText()));
    const sealed = box.seal('signing-key', Buffer.from('the secret'));
    expect(sealed).not.toContain(Buffer.from('the secret').toString('base64'));
    expect(box.open('signing-key', sealed).toString()).toBe('the secret');
    expect(() => box.open('admin-token', sealed)).toThrow(/does not decrypt/);
    const other = await SecretBox.fromFile(keyFile(SecretBox.newKeyFileText()));
    expect(() => other.open('signing-key', sealed)).toThrow(/sealed with key [0-9a-f]{16}, which the secret key file does not hold/);
  });

  it('rotates: a new first key seals, the old one still opens what it sealed', async () => {
    const oldText = SecretBox.newKeyFileText();
    const old = await SecretBox.fromFile(keyFile(oldText));
    const sealed = old.seal('x', Buffer.from('v'));
    const rotated = await SecretBox.fromFile(keyFile(`${SecretBox.newKeyFileText()}${oldText}`));
    expect(rotated.isCurrent(sealed)).toBe(false);
    expect(rotated.open('x', sealed).toString()).toBe('v');
    expect(rotated.isCurrent(rotated.seal('x', Buffer.from('v')))).toBe(true);
  });

  it('refuses a key file others may read, or one that holds no 32-byte key', async () => {
    const open = keyFile(SecretBox.newKeyFileText(), 0o644);
    await expect(SecretBox.fromFile(open)).rejects.toThrow(`${open} has mode 644; a secret key file must be 0600`);
    await expect(SecretBox.fromFile(keyFile('c2hvcnQ=\n'))).rejects.toThrow(/line 1 is not 32 bytes in base64/);
    await expect(SecretBox.fromFile(keyFile('# nothing\n'))).rejects.toThrow(/holds no key/);
  });
});
