/**
 * Megatron-LM's tokens-per-expert folder (--save-tokens-per-expert-interval N): `{save}/tokens_per_expert/rank{R}.jsonl`,
 * one line per (iteration, MoE layer) and rank: {"iter", "block": "decoder" | "mtp", "layer", "tpe": [[...], ...]}
 * where `tpe` holds one list per micro-batch of the token counts of that rank's LOCAL experts (the grouped GEMM's
 * tokens_per_expert argument, after the all-to-all). Source: NVIDIA/Megatron-LM megatron/training/activation_logging.py
 * (ActivationLogger.save_tpe, commit d98e8a64ddf34856e74b24714e3bedb2f5a39553).
 *
 * Merging ranks into global experts uses Megatron's expert rank grid (megatron/core/parallel_state.py, same commit:
 * RankGenerator(tp=etp, ep, dp=edp, pp, order 'tp-cp-ep-dp-pp' with cp=1 on the expert grid)): for global rank r,
 *   etp_rank = r mod etp,  ep_rank = ⌊r/etp⌋ mod ep,  edp_rank = ⌊r/(etp·ep)⌋ mod edp,  pp_rank = ⌊r/(etp·ep·edp)⌋,
 * and local expert j of ep_rank e is global expert e·E_local + j. Expert-tensor-parallel ranks see the same tokens, so
 * only etp_rank 0 is counted; expert-data-parallel ranks see different data, so they are summed. "layer" is the index in
 * the rank's own pipeline stage (module name decoder.layers.N), so with pp > 1 the global layer is N + pp_rank · (layers
 * per stage), layers per stage taken as max(N)+1 over all stages (an even split).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkCount, type LoadData } from './load_engines.ts';

/** How the job was split (Megatron flags): only what the merge needs. */
export interface MegatronGrid {
  /** --expert-model-parallel-size (default: every rank file is one EP rank). */
  ep?: number;
  /** --expert-tensor-parallel-size (default 1). */
  etp?: number;
  /** --pipeline-model-parallel-size (default 1). */
  pp?: number;
}

/** Rank coordinates on Megatron's expert grid (order tp-ep-dp-pp, fastest first). */
export function expertGridCoords(rank: number, world: number, g: Required<MegatronGrid>): { etp: number; ep: number; edp: number; pp: number } {
  const per = g.etp * g.ep * g.pp;
  if (world % per !== 0) throw new Error(`${world} ranks do not split into etp ${g.etp} × ep ${g.ep} × pp ${g.pp} (world size must be a multiple of ${per})`);
  const edp = world / per;
  return {
    etp: rank % g.etp,
    ep: Math.floor(rank / g.etp) % g.ep,
    edp: Math.floor(rank / (g.etp * g.ep)) % edp,
    pp: Math.floor(rank / (g.etp * g.ep * edp)),
  };
}

/** The rank{R}.jsonl files of a tokens_per_expert folder (or of its parent save folder), by rank. */
export async function tpeFiles(dir: string): Promise<Array<{ rank: number; path: string }> | null> {
  let names = await readdir(dir);
  if (names.includes('tokens_per_expert') && (await stat(join(dir, 'tokens_per_expert'))).isDirectory()) {
    dir = join(dir, 'tokens_per_expert');
    names = await readdir(dir);
  }
  const files = names.filter((f) => /^rank\d+\.jsonl$/.test(f)).map((f) => ({ rank: Number(/\d+/.exec(f)![0]), path: join(dir, f) }));
  if (files.length === 0) return null;
  return files.sort((a, b) => a.rank - b.rank);
}

/** Reads a tokens_per_expert folder into global [layer][expert] loads, summed and per iteration. */
export async function readMegatronTpe(dir: string, grid: MegatronGrid = {}): Promise<LoadData> {
  const files = await tpeFiles(dir);
  if (!files) throw new Error(`${dir}: no rank{R}.jsonl files (expected Megatron's tokens_per_expert folder)`);
  const world = files[files.length - 1].rank + 1;
  const missing = world - files.length;
  if (missing > 0) {
    const have = new Set(files.map((f) => f.rank));
    const first = Array.from({ length: world }, (_, r) => r).find((r) => !have.has(r));
    throw new Error(`${dir}: rank files 0..${world - 1} expected, ${missing} missing (first: rank${first}.jsonl); every rank writes its own file`);
  }
  const g = { ep: grid.ep ?? world / ((grid.etp ?? 1) * (grid.pp ?? 1)), etp: grid.etp ?? 1, pp: grid.pp ?? 1 };
  for (const [k, v] of Object.entries(g)) if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} ${v} must be a positive integer`);
  // (iter, pp stage, local layer) → global expert counts; local expert count checked equal everywhere
  const cells = new Map<string, { iter: number; pp: number; layer: number; counts: number[] }>();
  let local = -1, lines = 0, mtp = 0, skippedEtp = 0, microbatches = 0;
  const maxLayer = new Map<number, number>(); // pp stage → max local layer index
  for (const f of files) {
    const c = expertGridCoords(f.rank, world, g);
    const text = await readFile(f.path, 'utf8');
    let n = 0;
    for (const raw of text.split('\n')) {
      n++;
      if (raw.trim() === '') continue;
      const where = `${f.path}:${n}`;
      let rec: Record<string, unknown>;
      try { rec = JSON.parse(raw) as Record<string, unknown>; } catch (e) { throw new Error(`${where}: invalid JSON (truncated?): ${(e as Error).message}`); }
      if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw new Error(`${where}: expected one JSON object per line`);
      if (rec.block === 'mtp') { mtp++; continue; }
      if (rec.block !== undefined && rec.block !== 'decoder') throw new Error(`${where}: "block" = ${JSON.stringify(rec.block)}, expected "decoder" or "mtp"`);
      const iter = rec.iter, layer = rec.layer, tpe = rec.tpe;
      if (!Number.isInteger(iter) || (iter as number) < 0) throw new Error(`${where}: "iter" = ${JSON.stringify(iter)} is not an iteration number`);
      if (!Number.isInteger(layer) || (layer as number) < 0) throw new Error(`${where}: "layer" = ${JSON.stringify(layer)} is not a layer index`);
      if (!Array.isArray(tpe) || tpe.length === 0) throw new Error(`${where}: "tpe" must be a non-empty list of per-micro-batch count lists`);
      lines++;
      maxLayer.set(c.pp, Math.max(maxLayer.get(c.pp) ?? -1, layer as number));
      if (c.etp !== 0) { skippedEtp++; continue; }
      const sum: number[] = [];
      tpe.forEach((mb, m) => {
        if (!Array.isArray(mb)) throw new Error(`${where}: tpe[${m}] is not a list of counts`);
        if (local < 0) local = mb.length;
        if (mb.length !== local || local === 0) throw new Error(`${where}: tpe[${m}] has ${mb.length} local experts, expected ${local} (same on every rank)`);
        mb.forEach((v, j) => { sum[j] = (sum[j] ?? 0) + checkCount(v, `${where} tpe[${m}][${j}]`); });
      });
      microbatches += tpe.length;
      const key = `${iter as number}/${c.pp}/${layer as number}`;
      const cell = cells.get(key) ?? { iter: iter as number, pp: c.pp, layer: layer as number, counts: new Array<number>(g.ep * local).fill(0) };
      sum.forEach((v, j) => { cell.counts[c.ep * local + j] += v; });
      cells.set(key, cell);
    }
  }
  if (cells.size === 0) throw new Error(`${dir}: no decoder tokens-per-expert records${mtp ? ` (only ${mtp} MTP records)` : ''}`);
  const perStage = Math.max(...maxLayer.values()) + 1;
  const globalLayer = (pp: number, layer: number): number => pp * perStage + layer;
  const layerIds = [...new Set([...cells.values()].map((c) => globalLayer(c.pp, c.layer)))].sort((a, b) => a - b);
  const row = new Map(layerIds.map((id, i) => [id, i]));
  const E = g.ep * local;
  const steps = [...new Set([...cells.values()].map((c) => c.iter))].sort((a, b) => a - b);
  const stepIndex = new Map(steps.map((s, i) => [s, i]));
  const perStep = steps.map(() => layerIds.map(() => new Array<number>(E).fill(0)));
  const weight = layerIds.map(() => new Array<number>(E).fill(0));
  for (const c of cells.values()) {
    const l = row.get(globalLayer(c.pp, c.layer))!;
    const s = perStep[stepIndex.get(c.iter)!][l];
    c.counts.forEach((v, e) => { s[e] += v; weight[l][e] += v; });
  }
  const edp = world / (g.etp * g.ep * g.pp);
  const notes = [
    `merged ${files.length} rank files (ep ${g.ep} × ${local} local experts = ${E} experts; etp ${g.etp}, pp ${g.pp}, expert-data-parallel ${edp}); ${lines} records, ${microbatches} micro-batches over ${steps.length} saved iterations`,
  ];
  if (grid.ep === undefined) notes.push(`--ep not given: taken as ${g.ep} (every rank expert-parallel, no expert-data-parallel replicas)`);
  if (skippedEtp) notes.push(`skipped ${skippedEtp} records of expert-tensor-parallel ranks ≠ 0 (same tokens as rank 0 of their group)`);
  if (g.pp > 1) notes.push(`layer ids = local index + pp stage × ${perStage} (even pipeline split assumed)`);
  if (mtp) notes.push(`skipped ${mtp} MTP records`);
  return { weight, layerIds, format: 'megatron-tpe', notes, series: { steps, weight: perStep } };
}
