import type { z } from 'zod';

/** How every schema error (zod's issues) is put into words, wherever input is checked. */

export type SchemaIssue = z.core.$ZodIssue;

/** The issue's key path, dotted (`controlPlaneEndpoint.vip`); empty at the top level. */
export function issuePath(issue: Pick<SchemaIssue, 'path'>): string {
  return issue.path.map(String).join('.');
}

/**
 * One line: `a.b: what is wrong; c: unknown key`. Whether a key is missing, and what type it
 * had, is read from the document itself, so the message does not depend on zod's wording.
 */
export function formatIssues(issues: readonly SchemaIssue[], document: unknown): string {
  const lines: string[] = [];
  for (const issue of issues) {
    const at = issuePath(issue);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${at ? `${at}.` : ''}${key}: unknown key`);
      continue;
    }
    const value = valueAt(document, issue.path);
    let what: string;
    if (!value.present) what = 'is required';
    else if (issue.code === 'invalid_type') what = `expected ${issue.expected}, got ${typeName(value.value)}`;
    // A record's key that does not pass: zod's own message says only that; the key's rule says why.
    else if (issue.code === 'invalid_key') what = issue.issues.map((inner) => inner.message).join('; ');
    else what = issue.message;
    lines.push(`${at || '(top level)'}: ${what}`);
  }
  return lines.join('; ');
}

function valueAt(document: unknown, path: PropertyKey[]): { present: boolean; value?: unknown } {
  let current: unknown = document;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || !(String(key) in current)) return { present: false };
    current = (current as Record<string, unknown>)[String(key)];
  }
  return { present: current !== undefined, value: current };
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value;
}
