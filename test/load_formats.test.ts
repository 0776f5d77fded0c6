/**
 * Load readers on files shaped like each engine's output (test/fixtures/load/README.md says which source each
 * mirrors); expected matrices are summed by hand in the comments. Then the errors: empty, truncated, ragged, NaN,
 * negative, pickles, mixed dialects. Pure TypeScript (no tfjs), so no describeBackends.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLoadFile } from '../src/plan/load_formats.ts';

const fx = (f: string): string => new URL(`./fixtures/load/${f}`, import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-load-'));
const tmp = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p; };

describe('engine load formats', () => {
  it('Switchyard metrics.jsonl: sums expert_load over lines, skips other lines', async () => {
    const d = await readLoadFile(fx('metrics.jsonl'));
    // [[5,0,3,2],[1,1,4,4]] + [[1,2,3,4],[0,6,2,2]]
    expect(d.weight).toEqual([[6, 2, 6, 6], [1, 7, 6, 6]]);
    expect(d.format).toBe('metrics');
    expect(d.notes.join(' ')).toMatch(/skipped 2 lines/);
  });

  it('CSV with header and layer column', async () => {
    const d = await readLoadFile(fx('matrix.csv'));
    expect(d.weight).toEqual([[10, 20, 30, 40], [0, 5, 5, 10]]);
    expect(d.layerIds).toEqual([3, 4]);
  });

  it('SGLang stat dump (logical_count [buffer][layers][experts]) and --init-expert-location logical_count', async () => {
    // layer 0: [3,1,0,4]+[1,1,6,0]+0 = [4,2,6,4]; layer 1: [2,2,2,2]+[0,4,4,0]+0 = [2,6,6,2]
    const a = await readLoadFile(fx('sglang_stat_dump.json'));
    expect(a.weight).toEqual([[4, 2, 6, 4], [2, 6, 6, 2]]);
    expect(a.format).toBe('sglang');
    const b = await readLoadFile(fx('sglang_logical_count.json'));
    expect(b.weight).toEqual(a.weight);
  });

  it('vLLM offline-EPLB stats JSONL: physical loads mapped through p2l_map and summed over records', async () => {
    // step 1 layer 0: p2l [0,1,2,3,0,1], load [10,1,5,2,4,6] -> [14,7,5,2]; layer 1: p2l [0,1,2,3,2,2], [2,8,1,3,0,1] -> [2,8,2,3]
    // step 2 layer 0: ones -> [2,2,1,1]; layer 1: twos -> [2,2,6,2]
    const d = await readLoadFile(fx('vllm_eplb_stats.jsonl'));
    expect(d.weight).toEqual([[16, 9, 6, 3], [4, 10, 8, 5]]);
    expect(d.format).toBe('vllm');
    expect(d.notes.join(' ')).toMatch(/ignored 1 records of other record_type/);
    expect(d.notes.join(' ')).toMatch(/num_redundant_experts=2/);
  });

  it('vLLM EplbModelState window (expert_load_window [W][L][P] + physical_to_logical_map)', async () => {
    // layer 0: window sum [4,2,3,1,3,1], p2l [0,1,2,3,0,1] -> [7,3,3,1]; layer 1: [4,1,1,2,1,3], p2l [0,1,2,3,1,3] -> [4,2,1,5]
    const d = await readLoadFile(fx('vllm_eplb_state.json'));
    expect(d.weight).toEqual([[7, 3, 3, 1], [4, 2, 1, 5]]);
    expect(d.format).toBe('vllm-state');
  });

  it('Megatron-Core router trace directory: counts top_indices per decoder layer over ranks, skips MTP', async () => {
    // layer 1: rank0 [0,2][2,3][0,1] + [2,0][2,1], rank1 [3,2][1,2] -> e0 3, e1 3, e2 6, e3 2
    // layer 3: rank0 [3,1][3,0][1,3], rank1 [0,3][3,2] -> e0 2, e1 2, e2 1, e3 5
    const d = await readLoadFile(fx('megatron_trace'));
    expect(d.weight).toEqual([[3, 3, 6, 2], [2, 2, 1, 5]]);
    expect(d.layerIds).toEqual([1, 3]);
    expect(d.topK).toBe(2);
    expect(d.notes.join(' ')).toMatch(/skipped 1 MTP records/);
    const wide = await readLoadFile(fx('megatron_trace/router_trace_rank1.jsonl'), { numExperts: 6 });
    expect(wide.weight).toEqual([[0, 1, 2, 1, 0, 0], [1, 0, 1, 2, 0, 0]]);
    await expect(readLoadFile(fx('megatron_trace'), { numExperts: 3 })).rejects.toThrow(/holds 3, not an expert id below 3/);
  });

  it('streams a long JSONL file line by line', async () => {
    const lines = Array.from({ length: 20000 }, (_, i) => JSON.stringify({ step: i, expert_load: [[i % 3, 1], [0, 2]] }));
    const d = await readLoadFile(tmp('long.jsonl', lines.join('\n') + '\n'));
    // Σ i%3 over 0..19999 = 6666·(0+1+2) + (19998%3=0, 19999%3=1) -> 19998 + 1
    expect(d.weight).toEqual([[19999, 20000], [0, 40000]]);
  });
});

describe('load errors name the file, line and value', () => {
  it('empty, whitespace-only and missing files', async () => {
    await expect(readLoadFile(tmp('empty.json', ''))).rejects.toThrow(/empty\.json is empty/);
    await expect(readLoadFile(tmp('blank.csv', '  \n\n'))).rejects.toThrow(/blank\.csv is empty/);
    await expect(readLoadFile(join(dir, 'nope.json'))).rejects.toThrow(/load file not found/);
  });

  it('truncated JSON document and truncated JSONL line', async () => {
    await expect(readLoadFile(tmp('cut.json', '[[1,2,3],[4,5'))).rejects.toThrow(/cut\.json: invalid JSON \(truncated\?\)/);
    const good = JSON.stringify({ expert_load: [[1, 2]] });
    await expect(readLoadFile(tmp('cut.jsonl', `${good}\n${good}\n{"expert_load": [[1,`))).rejects.toThrow(/cut\.jsonl:3: invalid JSON \(truncated\?\)/);
  });

  it('ragged rows, negative and NaN counts', async () => {
    await expect(readLoadFile(tmp('ragged.csv', '1,2,3\n4,5\n'))).rejects.toThrow(/ragged\.csv:2: 2 counts, expected 3 \(ragged rows\)/);
    await expect(readLoadFile(tmp('neg.json', '[[1,-2],[3,4]]'))).rejects.toThrow(/neg\.json\[0\]\[1\] = -2 is not a finite non-negative count/);
    await expect(readLoadFile(tmp('nan.jsonl', '{"expert_load": [[1, NaN]]}\n'))).rejects.toThrow(/nan\.jsonl:1: NaN is not a count/);
    await expect(readLoadFile(tmp('nan.csv', '1,nan\n'))).rejects.toThrow(/nan\.csv:1: cell 2 = "nan" is not a finite count/);
    await expect(readLoadFile(tmp('shape.jsonl', '{"expert_load": [[1,2]]}\n{"expert_load": [[1,2,3]]}\n'))).rejects.toThrow(/shape\.jsonl:2 expert_load\[0\] has 3 entries, expected 2/);
  });

  it('pickles, mixed dialects, malformed engine records', async () => {
    await expect(readLoadFile(tmp('dump.pt', 'PK\u0003\u0004rest'))).rejects.toThrow(/torch\/pickle file; convert it to JSON/);
    const mixed = `${JSON.stringify({ expert_load: [[1]] })}\n${JSON.stringify({ layer: 0, top_indices: [[0]] })}\n`;
    await expect(readLoadFile(tmp('mixed.jsonl', mixed))).rejects.toThrow(/mixed\.jsonl:2: a megatron record in a metrics file/);
    const shortRec = JSON.stringify({ block: 'decoder', layer: 0, num_tokens: 3, topk: 1, top_indices: [[0], [1]] });
    await expect(readLoadFile(tmp('short.jsonl', shortRec + '\n'))).rejects.toThrow(/num_tokens 3 but top_indices has 2 rows/);
    const badMap = JSON.stringify({ record_type: 'eplb_load_stats', step: 1, expert_load: [[1, 2, 3]], p2l_map: [[0, 1]] });
    await expect(readLoadFile(tmp('badmap.jsonl', badMap + '\n'))).rejects.toThrow(/p2l_map\[0\] has 2 entries, expected 3/);
    await expect(readLoadFile(tmp('none.jsonl', '{"loss": 1}\n'))).rejects.toThrow(/no line carries expert loads/);
  });
});
