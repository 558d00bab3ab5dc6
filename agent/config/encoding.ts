import { gunzipSync } from 'node:zlib';
import { InputError } from '../core/errors.ts';

/**
 * Decoding of guestinfo values, exactly as cloud-init's VMware datasource does it: the
 * `.encoding` key names base64 (`base64`, `b64`) or gzip+base64 (`gzip+base64`, `gz+b64`);
 * anything else, or no encoding, is plain text. An empty value, white space or `---` is absent.
 */

/** guestinfo caps a value at 64 KiB. */
export const GUESTINFO_VALUE_LIMIT = 64 * 1024;
/** A decoded config larger than this is refused (a gzip bomb guard; real configs are ~2 KiB). */
const DECODED_LIMIT = 1024 * 1024;

export type Encoding = 'plain' | 'base64' | 'gzip+base64';

export function isAbsent(value: string | undefined): boolean {
  if (value === undefined) return true;
  const trimmed = value.trim();
  return trimmed === '' || trimmed === '---';
}

export function parseEncoding(raw: string | undefined): Encoding {
  switch ((raw ?? '').trim().toLowerCase()) {
    case 'base64':
    case 'b64':
      return 'base64';
    case 'gzip+base64':
    case 'gz+b64':
      return 'gzip+base64';
    default:
      return 'plain';
  }
}

/** Decodes one value; `key` names it in every error (for example `guestinfo.pke.config`). */
export function decodeValue(key: string, value: string, encoding: Encoding): string {
  if (Buffer.byteLength(value) > GUESTINFO_VALUE_LIMIT) {
    throw new InputError(`${key}: value is ${Buffer.byteLength(value)} bytes, over the guestinfo limit of ${GUESTINFO_VALUE_LIMIT}`);
  }
  if (encoding === 'plain') return value;

  const bytes = strictBase64(key, value);
  if (encoding === 'base64') return utf8(key, bytes);
  let inflated: Buffer;
  try {
    inflated = gunzipSync(bytes, { maxOutputLength: DECODED_LIMIT });
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
        ? `decompresses to more than ${DECODED_LIMIT} bytes`
        : `is not valid gzip (${(error as Error).message})`;
    throw new InputError(`${key}: gzip+base64 value ${reason}`);
  }
  return utf8(key, inflated);
}

function strictBase64(key: string, value: string): Buffer {
  const compact = value.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw new InputError(`${key}: value is not valid base64`);
  }
  return Buffer.from(compact, 'base64');
}

function utf8(key: string, bytes: Buffer): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (text.includes('\uFFFD')) throw new InputError(`${key}: decoded value is not UTF-8 text`);
  if (Buffer.byteLength(text) > DECODED_LIMIT) throw new InputError(`${key}: decoded value is over ${DECODED_LIMIT} bytes`);
  return text;
}
