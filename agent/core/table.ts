import { escapeControl } from './escape.ts';

/** A plain text table: a header row, columns padded to their widest cell, two spaces apart; control characters escaped. */
export function renderTable(header: string[], rows: (string | number | undefined)[][]): string {
  const cells = [header, ...rows.map((row) => row.map((cell) => (cell === undefined ? '' : escapeControl(String(cell)))))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

/** `name  value` lines, the values in one column: a record shown to a person. */
export function renderFields(rows: [string, string | number][]): string {
  return rows.map(([name, value]) => `${name.padEnd(20)}${escapeControl(String(value))}`).join('\n');
}
