/** Plain-text tables and number formats for the plan and simulate commands. */

/** Right-aligns every column but the first; rows are arrays of cells. */
export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const width = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(width[c]) : cell.padStart(width[c]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Seconds as milliseconds with 3 decimals. */
export const ms = (s: number): string => (s * 1e3).toFixed(3);
/** A ratio as a percentage with 1 decimal. */
export const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
/** A number with d decimals. */
export const fix = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
/** Bytes in MB (1e6) with 1 decimal. */
export const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;
