/**
 * Fuzz of the load-trace readers (`plan`, `simulate`): seeded mutations of every engine-shaped fixture —
 * truncation, byte flips, deleted/duplicated lines, number edits — must each give a clean Error with a
 * message, or a load matrix of finite, non-negative numbers with equal-length rows. Never a crash of
 * another kind, a hang, or a malformed result.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect } from 'vitest';
import { readLoadFile } from '../src/plan/load_formats.ts';

const FIXTURES = ['matrix.csv', 'metrics.jsonl', 'sglang_logical_count.json', 'sglang_stat_dump.json', 'vllm_eplb_state.json', 'vllm_eplb_stats.jsonl']
  .map((f) => path.join('test/fixtures/load', f));

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
}

/** One random mutation of a file's bytes. */
function mutate(bytes: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(bytes);
  const kind = Math.floor(rnd() * 6);
  const at = Math.floor(rnd() * Math.max(1, b.length));
  switch (kind) {
    case 0: return b.subarray(0, at); // truncation
    case 1: { for (let i = 0; i < 1 + rnd() * 8; i++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256); return b; } // byte flips
    case 2: { const lines = b.toString('utf8').split('\n'); lines.splice(Math.floor(rnd() * lines.length), 1); return Buffer.from(lines.join('\n')); } // drop a line
    case 3: { const lines = b.toString('utf8').split('\n'); const i = Math.floor(rnd() * lines.length); lines.splice(i, 0, lines[i]); return Buffer.from(lines.join('\n')); } // duplicate a line
    case 4: return Buffer.from(b.toString('utf8').replace(/\d+(\.\d+)?/g, (m) => (rnd() < 0.1 ? ['-1', 'NaN', '1e400', '', '"7"', '0.5'][Math.floor(rnd() * 6)] : m)));
    default: return Buffer.from(b.toString('utf8').replace(/[[\]{}]/g, (m) => (rnd() < 0.05 ? '' : m))); // break nesting
  }
}

/** Why a returned load is malformed, or null when it is a non-empty matrix of finite counts ≥ 0 with equal rows. */
function malformed(load: unknown): string | null {
  const rows = (load as { weight?: unknown }).weight;
  if (!Array.isArray(rows) || rows.length === 0) return `weight is ${JSON.stringify(rows)?.slice(0, 80)}, not a non-empty matrix`;
  for (const [i, row] of rows.entries()) {
    if (!Array.isArray(row) || row.length === 0) return `row ${i} is ${JSON.stringify(row)?.slice(0, 80)}, not a non-empty list`;
    if (row.length !== rows[0].length) return `row ${i} has ${row.length} counts, row 0 has ${rows[0].length} (ragged)`;
    for (const [j, v] of row.entries()) if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `weight[${i}][${j}] = ${v}, not a finite count ≥ 0`;
  }
  return null;
}

describe('load-trace readers under mutation', () => {
  it('give a clean error or a well-formed load for 1,500 mutated files', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-fuzz-load-'));
    const rnd = lcg(12345);
    let ok = 0;
    let rejected = 0;
    for (let i = 0; i < 1500; i++) {
      const src = FIXTURES[i % FIXTURES.length];
      const file = path.join(dir, `case-${i % 7}${path.extname(src)}`);
      fs.writeFileSync(file, mutate(fs.readFileSync(src), rnd));
      // Only the reader runs inside try: "the reader refused" is told apart from "it returned something wrong".
      let load: unknown;
      let refusal: unknown = null;
      try {
        load = await readLoadFile(file);
      } catch (e) {
        refusal = e;
      }
      if (refusal !== null) {
        // a clean refusal: an Error with a message, not a TypeError/RangeError/ReferenceError from inside a reader
        const e = refusal as Error;
        if (!(e instanceof Error) || ['TypeError', 'RangeError', 'ReferenceError'].includes(e.name) || e.message.length === 0) {
          throw new Error(`case ${i} (${src}): unclean refusal ${String(e)}`);
        }
        rejected++;
        continue;
      }
      const why = malformed(load);
      if (why !== null) throw new Error(`case ${i} (${src}): the reader returned a malformed load: ${why}`);
      ok++;
    }
    expect(ok + rejected).toBe(1500);
    expect(rejected).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
  });

  it('the check itself flags NaN, negative, ragged and empty loads', () => {
    expect(malformed({ weight: [[1, 2], [3, 4]] })).toBeNull();
    expect(malformed({ weight: [[1, NaN]] })).toMatch(/weight\[0\]\[1\] = NaN/);
    expect(malformed({ weight: [[1, -2]] })).toMatch(/= -2/);
    expect(malformed({ weight: [[1, Infinity]] })).toMatch(/= Infinity/);
    expect(malformed({ weight: [[1, 2], [3]] })).toMatch(/ragged/);
    expect(malformed({ weight: [] })).toMatch(/not a non-empty matrix/);
    expect(malformed({})).toMatch(/not a non-empty matrix/);
  });
});
