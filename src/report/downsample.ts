/**
 * Downsampling for the report: long runs must still open fast. Line series keep each bucket's min and max (loss
 * spikes survive, unlike plain averaging or stride sampling); heatmaps average step buckets; heatmap cells travel
 * as base64 fixed-point so a 12-layer × 64-expert × 500-bucket map stays ≈1 MB of HTML.
 */

/** A plotted point [step, value]; null value = a gap (a non-finite value was logged there). */
export type Point = [number, number | null];

/** Bucket g of n items into b buckets: [⌊g·n/b⌋, ⌊(g+1)·n/b⌋). */
export function bucketRange(g: number, n: number, b: number): [number, number] {
  return [Math.floor((g * n) / b), Math.floor(((g + 1) * n) / b)];
}

/**
 * Min/max downsampling to at most `maxPoints` points: ⌊maxPoints/2⌋ buckets, each emitting its min and max point
 * in step order, plus a null point (a gap) where the bucket held a null. Unchanged when n ≤ maxPoints.
 */
export function minMaxDownsample(xs: ArrayLike<number>, ys: ArrayLike<number | null>, maxPoints: number): Point[] {
  if (xs.length !== ys.length) throw new Error(`minMaxDownsample: ${xs.length} x values for ${ys.length} y values`);
  if (!Number.isInteger(maxPoints) || maxPoints < 2) throw new Error(`minMaxDownsample: maxPoints must be an integer ≥ 2, got ${maxPoints}`);
  const n = xs.length;
  const finite = (v: number | null): v is number => v !== null && Number.isFinite(v);
  if (n <= maxPoints) return Array.from({ length: n }, (_, i) => [xs[i], finite(ys[i]) ? ys[i] : null] as Point);
  const b = Math.floor(maxPoints / 2);
  const out: Point[] = [];
  for (let g = 0; g < b; g++) {
    const [lo, hi] = bucketRange(g, n, b);
    let iMin = -1, iMax = -1, iNull = -1;
    for (let i = lo; i < hi; i++) {
      const v = ys[i];
      if (!finite(v)) { if (iNull < 0) iNull = i; continue; }
      if (iMin < 0 || v < (ys[iMin] as number)) iMin = i;
      if (iMax < 0 || v > (ys[iMax] as number)) iMax = i;
    }
    const picks = [...new Set([iMin, iMax, iNull].filter((i) => i >= 0))].sort((a, c) => a - c);
    for (const i of picks) out.push([xs[i], i === iNull ? null : (ys[i] as number)]);
  }
  return out;
}

/** Step buckets for a heatmap: at most `maxBuckets` contiguous record ranges, labelled by their first and last step. */
export interface StepBuckets {
  /** [lo, hi) record indices per bucket. */
  ranges: Array<[number, number]>;
  /** first and last step of each bucket. */
  steps: Array<[number, number]>;
}

/** Splits n records (with their steps) into min(n, maxBuckets) contiguous buckets. */
export function stepBuckets(steps: ArrayLike<number>, maxBuckets: number): StepBuckets {
  if (!Number.isInteger(maxBuckets) || maxBuckets < 1) throw new Error(`stepBuckets: maxBuckets must be a positive integer, got ${maxBuckets}`);
  const n = steps.length;
  const b = Math.min(n, maxBuckets);
  const ranges: Array<[number, number]> = [];
  for (let g = 0; g < b; g++) ranges.push(bucketRange(g, n, b));
  return { ranges, steps: ranges.map(([lo, hi]) => [steps[lo], steps[hi - 1]]) };
}

/**
 * Heatmap cells [E][B] of one layer: cell(i, g) = mean over the bucket's records of E · load_i / Σ_j load_j
 * (load ÷ mean load: 1 = even, 0 = idle, E = everything on one expert). Records with no load count as even.
 */
export function loadRatioCells(loads: ArrayLike<ArrayLike<number>>, buckets: StepBuckets): Float64Array[] {
  if (loads.length === 0) throw new Error('loadRatioCells: no records');
  const E = loads[0].length;
  const cells = Array.from({ length: E }, () => new Float64Array(buckets.ranges.length));
  buckets.ranges.forEach(([lo, hi], g) => {
    for (let s = lo; s < hi; s++) {
      const row = loads[s];
      if (row.length !== E) throw new Error(`loadRatioCells: record ${s} has ${row.length} experts, record 0 has ${E}`);
      let sum = 0;
      for (let i = 0; i < E; i++) sum += row[i];
      for (let i = 0; i < E; i++) cells[i][g] += sum > 0 ? (E * row[i]) / sum : 1;
    }
    for (let i = 0; i < E; i++) cells[i][g] /= hi - lo;
  });
  return cells;
}

/** Fixed-point scale of encoded heatmap cells: value = uint16 / HEAT_SCALE (resolution 0.001, max 65.535). */
export const HEAT_SCALE = 1000;

/** Encodes cells [rows][cols] row-major as little-endian uint16 of round(v · HEAT_SCALE), base64. */
export function encodeCells(cells: ArrayLike<number>[]): string {
  const rows = cells.length;
  const cols = rows ? cells[0].length : 0;
  const buf = Buffer.alloc(rows * cols * 2);
  for (let r = 0; r < rows; r++) {
    if (cells[r].length !== cols) throw new Error(`encodeCells: row ${r} has ${cells[r].length} columns, row 0 has ${cols}`);
    for (let c = 0; c < cols; c++) {
      const v = cells[r][c];
      if (!Number.isFinite(v) || v < 0) throw new Error(`encodeCells: cell [${r}][${c}] = ${v} must be a finite number ≥ 0`);
      buf.writeUInt16LE(Math.min(65535, Math.round(v * HEAT_SCALE)), 2 * (r * cols + c));
    }
  }
  return buf.toString('base64');
}

/** Inverse of encodeCells (for tests and the text view): base64 → [rows][cols]. */
export function decodeCells(b64: string, rows: number, cols: number): number[][] {
  const buf = Buffer.from(b64, 'base64');
  if (buf.length !== rows * cols * 2) throw new Error(`decodeCells: ${buf.length} bytes for ${rows}×${cols} cells`);
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => buf.readUInt16LE(2 * (r * cols + c)) / HEAT_SCALE));
}

/** Rounds to `digits` significant digits (smaller JSON, no visible change); null stays null. */
export function roundSig(v: number | null, digits = 5): number | null {
  if (v === null || !Number.isFinite(v) || v === 0) return v === null || !Number.isFinite(v) ? null : 0;
  return Number(v.toPrecision(digits));
}
