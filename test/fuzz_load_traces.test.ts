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

describe('load-trace readers under mutation', () => {
  it('give a clean error or a well-formed load for 1,500 mutated files', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-fuzz-load-'));
    const rnd = lcg(12345);
    const t0 = Date.now();
    let ok = 0;
    let rejected = 0;
    for (let i = 0; i < 1500 && Date.now() - t0 < 60_000; i++) {
      const src = FIXTURES[i % FIXTURES.length];
      const file = path.join(dir, `case-${i % 7}${path.extname(src)}`);
      fs.writeFileSync(file, mutate(fs.readFileSync(src), rnd));
      try {
        const load = await readLoadFile(file);
        const rows = load.weight ?? (load as unknown as { load: number[][] }).load;
        expect(Array.isArray(rows) && rows.length > 0).toBe(true);
        for (const row of rows) {
          expect(row.length).toBe(rows[0].length);
          for (const v of row) expect(Number.isFinite(v) && v >= 0).toBe(true);
        }
        ok++;
      } catch (e) {
        // a clean error: an Error with a message, not a TypeError/RangeError from inside a reader
        expect(e).toBeInstanceOf(Error);
        expect(['TypeError', 'RangeError', 'ReferenceError']).not.toContain((e as Error).name);
        expect((e as Error).message.length).toBeGreaterThan(0);
        rejected++;
      }
    }
    expect(ok + rejected).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
  });
});
