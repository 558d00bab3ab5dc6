import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { InputError, PkeError, errorMessage } from '../../core/errors.ts';

/**
 * Encryption of the secrets a shared store holds (AES-256-GCM, a fresh 96-bit nonce per value,
 * the value's name as associated data so that a value cannot be moved to another name).
 *
 * The key file (mode 0600) holds one or more keys, one a line, each 32 bytes in base64. The
 * first encrypts; every one decrypts. A sealed value names its key by an id (the first 8 bytes
 * of the key's SHA-256), so that a rotation can add a key first, re-seal, then drop the old one.
 */
export class SecretBox {
  private readonly keys: { id: string; key: Buffer }[];

  constructor(keys: Buffer[]) {
    if (keys.length === 0) throw new PkeError('a secret key file needs at least one key');
    this.keys = keys.map((key) => ({ id: keyId(key), key }));
  }

  /** Reads the key file; refuses one that others may read. */
  static async fromFile(file: string): Promise<SecretBox> {
    let text: string;
    try {
      const info = await stat(file);
      if ((info.mode & 0o077) !== 0)
        throw new InputError(`${file} has mode ${(info.mode & 0o777).toString(8)}; a secret key file must be 0600`, { path: file });
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (error instanceof InputError) throw error;
      throw new InputError(`cannot read the secret key file ${file}: ${errorMessage(error)}`, { path: file });
    }
    const keys = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line, i) => {
        const key = Buffer.from(line, 'base64');
        if (key.length !== 32) throw new InputError(`${file}: line ${i + 1} is not 32 bytes in base64`, { path: file });
        return key;
      });
    if (keys.length === 0) throw new InputError(`${file} holds no key (one a line, 32 bytes in base64)`, { path: file });
    return new SecretBox(keys);
  }

  /** A new key file's text: one fresh key. */
  static newKeyFileText(): string {
    return `${randomBytes(32).toString('base64')}\n`;
  }

  seal(name: string, plain: Buffer): string {
    const { id, key } = this.keys[0] as { id: string; key: Buffer };
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.from(name));
    const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
    return `v1.${id}.${Buffer.concat([nonce, cipher.getAuthTag(), sealed]).toString('base64')}`;
  }

  open(name: string, text: string): Buffer {
    const [version, id, body = ''] = text.split('.');
    const entry = this.keys.find((k) => k.id === id);
    if (version !== 'v1' || !entry)
      throw new PkeError(`the secret ${name} is sealed with key ${id ?? '?'}, which the secret key file does not hold`);
    const bytes = Buffer.from(body, 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', entry.key, bytes.subarray(0, 12));
      decipher.setAAD(Buffer.from(name));
      decipher.setAuthTag(bytes.subarray(12, 28));
      return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]);
    } catch (error) {
      throw new PkeError(`the secret ${name} does not decrypt with key ${id}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** Sealed with the first key (nothing to re-seal). */
  isCurrent(text: string): boolean {
    return text.split('.')[1] === this.keys[0]?.id;
  }
}

function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
