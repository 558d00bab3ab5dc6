/**
 * Control characters in text from outside (a node's phase report, a request path, a host
 * name) are shown, never obeyed: every log line and every table cell goes through this.
 * C0 and C1 controls, DEL, and Unicode's line separators and direction overrides become
 * `\n`, `\r`, `\t`, `\xHH` or `\u{HHHH}`.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is what this module is for
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function escapeControl(text: string): string {
  return text.replace(CONTROL, (char) => {
    const code = char.charCodeAt(0);
    return NAMED[char] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`);
  });
}
