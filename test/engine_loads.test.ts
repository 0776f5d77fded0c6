/**
 * Megatron-LM's tokens_per_expert folder (megatron/training/activation_logging.py, save_tpe: one rank{R}.jsonl per global
 * rank, {"iter","block","layer","tpe": per-micro-batch local counts}) merged into global experts on Megatron's expert
 * rank grid (megatron/core/parallel_state.py: order tp-ep-dp-pp, fastest first), and per-step series of the other
 * load formats. Expected matrices are worked out by hand in the comments.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLoadFile } from '../src/plan/load_formats.ts';
import { expertGridCoords, readMegatronTpe } from '../src/plan/load_megatron_tpe.ts';
import { loadAsRun } from '../src/report/load_file.ts';
import { buildPage } from '../src/report/report.ts';
import { readReportInput } from '../src/report/load.ts';
import { textOf } from '../src/report/text.ts';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sy-tpe-'));
}

/** Writes rank{r}.jsonl files: lines[r] = records of rank r. */
function writeRanks(dir: string, lines: Record<number, object[]>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [r, recs] of Object.entries(lines)) fs.writeFileSync(path.join(dir, `rank${r}.jsonl`), recs.map((x) => JSON.stringify(x)).join('\n') + '\n');
}

const rec = (iter: number, layer: number, tpe: number[][], block = 'decoder'): object => ({ iter, block, layer, tpe });

describe('Megatron tokens_per_expert', () => {
  it('places ranks on the expert grid tp-ep-dp-pp', () => {
    // world 8, etp 2, ep 2, pp 2 → edp 1: rank = etp + 2·ep + 4·pp
    expect(expertGridCoords(0, 8, { etp: 2, ep: 2, pp: 2 })).toEqual({ etp: 0, ep: 0, edp: 0, pp: 0 });
    expect(expertGridCoords(3, 8, { etp: 2, ep: 2, pp: 2 })).toEqual({ etp: 1, ep: 1, edp: 0, pp: 0 });
    expect(expertGridCoords(6, 8, { etp: 2, ep: 2, pp: 2 })).toEqual({ etp: 0, ep: 1, edp: 0, pp: 1 });
    // world 8, etp 1, ep 2, pp 1 → edp 4: rank = ep + 2·edp
    expect(expertGridCoords(5, 8, { etp: 1, ep: 2, pp: 1 })).toEqual({ etp: 0, ep: 1, edp: 2, pp: 0 });
    expect(() => expertGridCoords(0, 6, { etp: 1, ep: 4, pp: 1 })).toThrow(/multiple of 4/);
  });

  it('merges EP ranks into global experts and sums expert-data-parallel replicas', async () => {
    const save = tmpDir();
    // world 4, ep 2 → edp 2; 2 local experts → 4 global. rank r: ep = r mod 2, edp = ⌊r/2⌋
    writeRanks(path.join(save, 'tokens_per_expert'), {
      0: [rec(10, 0, [[1, 2], [3, 4]]), rec(10, 0, [[9, 9]], 'mtp'), rec(20, 0, [[1, 0]])], // ep0: local sums [4, 6] at iter 10
      1: [rec(10, 0, [[5, 0]]), rec(20, 0, [[0, 2]])], //                                      ep1: [5, 0]
      2: [rec(10, 0, [[1, 1]]), rec(20, 0, [[0, 0]])], //                                      ep0 (edp1): [1, 1]
      3: [rec(10, 0, [[0, 7]]), rec(20, 0, [[3, 0]])], //                                      ep1 (edp1): [0, 7]
    });
    const d = await readMegatronTpe(save, { ep: 2 });
    // iter 10: experts [4+1, 6+1, 5+0, 0+7] = [5, 7, 5, 7]; iter 20: [1+0, 0+0, 0+3, 2+0] = [1, 0, 3, 2]
    expect(d.series!.steps).toEqual([10, 20]);
    expect(d.series!.weight).toEqual([[[5, 7, 5, 7]], [[1, 0, 3, 2]]]);
    expect(d.weight).toEqual([[6, 7, 8, 9]]);
    expect(d.format).toBe('megatron-tpe');
    expect(d.notes.join()).toMatch(/skipped 1 MTP records/);
    // the folder itself, and readLoadFile's detection, give the same
    expect((await readLoadFile(path.join(save, 'tokens_per_expert'), { grid: { ep: 2 } })).weight).toEqual([[6, 7, 8, 9]]);
    // without --ep, each rank file is one EP rank: 8 experts, one per (rank, local)
    expect((await readLoadFile(save)).weight).toEqual([[5, 6, 5, 2, 1, 1, 3, 7]]); // rank0 [1+3+1, 2+4+0], rank1 [5, 2], rank2 [1, 1], rank3 [3, 7]
  });

  it('counts one expert-tensor-parallel rank and offsets pipeline stages', async () => {
    const dir = tmpDir();
    // world 8: etp 2, ep 2, pp 2 (edp 1). rank = etp + 2·ep + 4·pp; etp-1 ranks repeat their partner's counts
    const L = (pp: number, ep: number, l: number): number[][] => [[10 * pp + ep + l, 1]];
    const files: Record<number, object[]> = {};
    for (let r = 0; r < 8; r++) {
      const { ep, pp } = expertGridCoords(r, 8, { etp: 2, ep: 2, pp: 2 });
      files[r] = [rec(1, 0, L(pp, ep, 0)), rec(1, 1, L(pp, ep, 1))];
    }
    writeRanks(dir, files);
    const d = await readMegatronTpe(dir, { ep: 2, etp: 2, pp: 2 });
    // stage 0 layers 0,1 → global 0,1; stage 1 layers 0,1 → global 2,3 (2 layers per stage)
    expect(d.layerIds).toEqual([0, 1, 2, 3]);
    expect(d.weight).toEqual([[0, 1, 1, 1], [1, 1, 2, 1], [10, 1, 11, 1], [11, 1, 12, 1]]);
    expect(d.notes.join()).toMatch(/skipped 8 records of expert-tensor-parallel ranks/);
  });

  it('refuses missing ranks, ragged local experts and bad records, naming the place', async () => {
    const a = tmpDir();
    writeRanks(a, { 0: [rec(1, 0, [[1, 2]])], 2: [rec(1, 0, [[1, 2]])] });
    await expect(readMegatronTpe(a)).rejects.toThrow(/1 missing \(first: rank1\.jsonl\)/);
    const b = tmpDir();
    writeRanks(b, { 0: [rec(1, 0, [[1, 2]])], 1: [rec(1, 0, [[1, 2, 3]])] });
    await expect(readMegatronTpe(b)).rejects.toThrow(/rank1\.jsonl:1: tpe\[0\] has 3 local experts, expected 2/);
    const c = tmpDir();
    writeRanks(c, { 0: [rec(1, 0, [[1, -2]])] });
    await expect(readMegatronTpe(c)).rejects.toThrow(/rank0\.jsonl:1 tpe\[0\]\[1\] = -2 is not a finite non-negative count/);
    const e = tmpDir();
    fs.writeFileSync(path.join(e, 'rank0.jsonl'), '{"iter": 1, "layer": 0, "tpe": [[1, 2]');
    await expect(readMegatronTpe(e)).rejects.toThrow(/rank0\.jsonl:1: invalid JSON \(truncated\?\)/);
    await expect(readMegatronTpe(c, { ep: 3 })).rejects.toThrow(/1 ranks do not split into etp 1 × ep 3/);
  });
});

describe('load series and report', () => {
  it('keeps steps apart for SGLang stacks, metrics lines and router traces', async () => {
    const dir = tmpDir();
    const sg = path.join(dir, 'sglang.json');
    fs.writeFileSync(sg, JSON.stringify({ logical_count: [[[1, 2], [3, 4]], [[0, 1], [1, 0]]] }));
    const s = await readLoadFile(sg);
    expect(s.series).toEqual({ steps: [0, 1], weight: [[[1, 2], [3, 4]], [[0, 1], [1, 0]]] });
    expect(s.weight).toEqual([[1, 3], [4, 4]]);
    const tr = path.join(dir, 'router_trace_rank0.jsonl');
    const t = (step: number, layer: number, idx: number[][]): string => JSON.stringify({ step, stage: 'train', block: 'decoder', layer, rank: 0, num_tokens: idx.length, topk: 1, top_indices: idx });
    fs.writeFileSync(tr, [t(1, 2, [[0], [1], [1]]), t(2, 2, [[2], [2], [0]])].join('\n'));
    const m = await readLoadFile(tr, { numExperts: 3 });
    expect(m.series).toEqual({ steps: [1, 2], weight: [[[1, 2, 0]], [[1, 0, 2]]] });
  });

  it('renders a tokens_per_expert folder as a run: balance over steps and a heatmap per layer', async () => {
    const save = tmpDir();
    writeRanks(path.join(save, 'tokens_per_expert'), {
      0: [rec(10, 0, [[8, 0]]), rec(10, 1, [[2, 2]]), rec(20, 0, [[4, 4]]), rec(20, 1, [[2, 2]])],
      1: [rec(10, 0, [[0, 0]]), rec(10, 1, [[2, 2]]), rec(20, 0, [[4, 4]]), rec(20, 1, [[2, 2]])],
    });
    const input = await readReportInput(save);
    expect(input.kind).toBe('loads');
    if (input.kind !== 'loads') return;
    const run = loadAsRun(input.data, save);
    // step 10: layer 0 loads [8, 0, 0, 0] → max share 1, CV √3; layer 1 even → 0.25, CV 0; means: 0.625, √3/2
    expect(run.records.map((r) => r.step)).toEqual([10, 20]);
    expect(run.records[0].max_load_share).toBeCloseTo(0.625, 12);
    expect(run.records[0].load_cv).toBeCloseTo(Math.sqrt(3) / 2, 12);
    expect(run.records[1].load_cv).toBeCloseTo(0, 12);
    const page = buildPage(input);
    const ids = page.sections.flatMap((s) => s.charts.map((c) => c.id));
    expect(ids).toEqual(expect.arrayContaining(['cv', 'maxvio', 'maxshare', 'heatmap']));
    expect(ids).not.toContain('loss'); // a load file has no training loss
    expect(textOf(input)).toContain('megatron-tpe');
    await expect(readReportInput(path.join(save, 'nothing'))).rejects.toThrow(/does not exist/);
    const junk = path.join(save, 'junk.json');
    fs.writeFileSync(junk, '{"hello": 1}');
    await expect(readReportInput(junk)).rejects.toThrow(/nor is it a load file/);
  });
});
