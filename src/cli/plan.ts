/**
 * `switchyard plan`: expert replication and placement from load statistics (EPLB or our planner), written as
 * Switchyard JSON, SGLang's --init-expert-location JSON, vLLM's offline-EPLB mapping JSONL, vllm-ascend's expert_map
 * JSON or TensorRT-LLM's load-balancer YAML; with --current, the balancedness of the placement running today beside
 * EPLB's and ours.
 */
import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.ts';
import { readLoadFile } from '../plan/load_formats.ts';
import { toSglang, toVllm, type PlacementFormat } from '../plan/placement_io.ts';
import { checkForEngine, readPlacementFile, toTrtllm, toVllmAscend, type PlacementData } from '../plan/placement_engines.ts';
import { planBalancedness } from '../plan/balancedness.ts';
import { spreadDuplicates } from '../plan/spread.ts';
import { planPlacement, summary, type PlanMethod, type PlanReport } from '../plan/planner.ts';
import { fix, formatTable } from '../report/terminal.ts';
import { MAX_EXPERTS, MAX_GPUS, MAX_MATRIX_CELLS, MAX_NODES, MAX_SLOTS, MAX_TOP_K } from '../limits.ts';
import { parseYamlSafe } from '../io/yaml_safe.ts';

/** Parses a positive integer flag up to `max`, naming the flag, the value and the bound on error. */
export function intFlag(v: string | undefined, flag: string, fallback: number | undefined, max: number): number {
  if (v === undefined) {
    if (fallback === undefined) throw new Error(`${flag} is required`);
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${flag} ${JSON.stringify(v).slice(0, 40)}: allowed an integer in 1..${max}`);
  return n;
}

/** Cross-checks of plan's sizes, before any planning work: GPUs split into nodes, groups and top-k within the experts. */
export function checkPlanSizes(s: { layers: number; experts: number; replicas: number; gpus: number; nodes: number; groups: number; topK: number }): void {
  if (s.nodes > s.gpus || s.gpus % s.nodes !== 0) throw new Error(`--nodes ${s.nodes} does not divide --gpus ${s.gpus}: every node holds the same number of GPUs`);
  if (s.replicas % s.gpus !== 0) throw new Error(`--replicas ${s.replicas} is not a multiple of --gpus ${s.gpus}: every GPU holds the same number of slots`);
  if (s.groups > s.experts || s.experts % s.groups !== 0) throw new Error(`--groups ${s.groups} does not divide the ${s.experts} experts`);
  if (s.topK > s.experts) throw new Error(`--top-k ${s.topK} exceeds the ${s.experts} experts`);
  if (s.layers * s.replicas > MAX_MATRIX_CELLS) throw new Error(`${s.layers} layers × --replicas ${s.replicas} = ${s.layers * s.replicas} slots, above the bound ${MAX_MATRIX_CELLS}`);
}

interface PlanFlags {
  load?: string; replicas?: string; groups?: string; nodes?: string; gpus?: string; method: string; format: string;
  topK?: string; experts?: string; crossNode?: boolean; out?: string; current?: string;
  ep?: string; etp?: string; pp?: string;
}

/** The current placement's rows in the load's layer order: by layer id when the file names layers, else in order. */
export function alignPlacement(cur: PlacementData, layerIds: number[], file: string): { rows: number[][]; note: string } {
  if (cur.layerIds) {
    const at = new Map(cur.layerIds.map((id, i) => [id, i]));
    if (layerIds.every((id) => at.has(id))) return { rows: layerIds.map((id) => cur.phy2log[at.get(id)!]), note: 'rows matched by layer id' };
  }
  if (cur.phy2log.length === layerIds.length) return { rows: cur.phy2log, note: 'rows matched in order (MoE layer i ↔ load row i)' };
  throw new Error(`--current ${file}: ${cur.phy2log.length} placement rows${cur.layerIds ? ` (layer ids ${cur.layerIds[0]}..${cur.layerIds[cur.layerIds.length - 1]})` : ''} do not match the load's ${layerIds.length} layers (ids ${layerIds[0]}..${layerIds[layerIds.length - 1]})`);
}

/** Every layer's plan with duplicate replicas moved off each GPU (spreadDuplicates), its swaps and balancedness. */
export function spreadPlan(phy2log: number[][], weight: number[][], numGpus: number): { rows: number[][]; swaps: number; balancedness: number[] } {
  let swaps = 0;
  const rows = phy2log.map((row, l) => { const r = spreadDuplicates(row, numGpus, weight[l]); swaps += r.swaps; return r.row; });
  return { rows, swaps, balancedness: planBalancedness(weight, rows, numGpus) };
}

/** Balancedness [L] of the current placement; an expert without a slot is an error naming the layer. */
export function currentBalancedness(weight: number[][], rows: number[][], numGpus: number, layerIds: number[], file: string): number[] {
  return weight.map((w, l) => {
    if (rows[l].length % numGpus !== 0) throw new Error(`--current ${file}: ${rows[l].length} slots do not split over --gpus ${numGpus}`);
    try {
      return planBalancedness([w], [rows[l]], numGpus)[0];
    } catch (e) {
      throw new Error(`--current ${file}: layer ${layerIds[l]}: ${(e as Error).message}`);
    }
  });
}

/** The printed summary: mean/min balancedness before, EPLB, chosen; inter-node copies; per-layer rows when few. */
export function planSummary(r: PlanReport, layerIds: number[], current?: { name: string; balancedness: number[] }): string {
  const row = (name: string, xs: number[]): string[] => { const s = summary(xs); return [name, fix(s.mean), fix(s.min)]; };
  const lines = [formatTable(['balancedness (mean/max GPU load)', 'mean', 'min'], [
    ...(current ? [row(`current (${current.name})`, current.balancedness)] : []),
    row('before (round-robin, no replicas)', r.balancednessBefore),
    row('EPLB', r.balancednessEplb),
    ...(r.method === 'best' ? [row('best (ours)', r.balancedness)] : []),
  ])];
  if (r.method === 'best') lines.push(`best beats EPLB on ${r.improvedLayers.length}/${r.balancedness.length} layers, never worse`);
  const v = r.interNode;
  if (v.hierarchicalAfter.length) {
    lines.push(`inter-node token copies per token (top-${v.topK}): flat ${fix(v.flat)} (any placement); ` +
      `node-dedup ${fix(summary(v.hierarchicalBefore).mean)} before → ${fix(summary(v.hierarchicalAfter).mean)} after`);
  }
  if (current) {
    lines.push(formatTable(['layer', 'current', 'EPLB', r.method === 'best' ? 'ours (best)' : 'plan', 'current → ours'],
      layerIds.map((id, l) => [String(id), fix(current.balancedness[l]), fix(r.balancednessEplb[l]), fix(r.balancedness[l]),
        `${r.balancedness[l] >= current.balancedness[l] ? '+' : ''}${fix(r.balancedness[l] - current.balancedness[l])}`])));
  } else if (layerIds.length <= 8) {
    lines.push(formatTable(['layer', 'before', 'EPLB', r.method === 'best' ? 'best' : 'plan', 'replicas per expert'],
      layerIds.map((id, l) => [String(id), fix(r.balancednessBefore[l]), fix(r.balancednessEplb[l]), fix(r.balancedness[l]), r.logcnt[l].join(' ')])));
  }
  return lines.join('\n');
}

/** Adds `switchyard plan`. */
export function register(program: Command): void {
  program
    .command('plan')
    .description('place and replicate experts from load statistics (DeepSeek EPLB, or our refined planner)')
    .option('--load <file>', 'loads: JSON/CSV matrix [layers][experts], metrics.jsonl, vLLM/SGLang stats, Megatron router trace (file or dir)')
    .option('--replicas <n>', 'physical expert slots per layer (≥ experts, multiple of --gpus)')
    .option('--groups <n>', 'expert groups (hierarchical policy when groups % nodes == 0)', '1')
    .option('--nodes <n>', 'server nodes', '1')
    .option('--gpus <n>', 'GPUs (multiple of --nodes)')
    .option('--method <m>', 'eplb (faithful port) or best (EPLB + local search, never worse)', 'best')
    .option('--format <f>', 'output: json (Switchyard plan), sglang (--init-expert-location), vllm (offline-EPLB mapping JSONL), vllm-ascend (expert_map JSON), trtllm (load-balancer YAML)', 'json')
    .option('--current <placement>', 'evaluate the placement running today (SGLang, vllm-ascend, TensorRT-LLM, vLLM or Switchyard file) beside EPLB and ours')
    .option('--ep <n>', 'Megatron tokens_per_expert folders: --expert-model-parallel-size of the run (default: one rank file per EP rank)')
    .option('--etp <n>', 'Megatron tokens_per_expert folders: --expert-tensor-parallel-size (default 1)')
    .option('--pp <n>', 'Megatron tokens_per_expert folders: --pipeline-model-parallel-size (default 1)')
    .option('--top-k <k>', 'experts per token for the inter-node volume (default: from the trace, else 8)')
    .option('--experts <n>', 'logical experts, when the load file cannot tell (Megatron traces)')
    .option('--cross-node', 'let our planner move experts across nodes under the hierarchical policy')
    .option('--out <file>', 'output file (written atomically; optional with --current)')
    .action(async (f: PlanFlags) => {
      if (!f.load) throw new Error('--load FILE is required');
      if (!f.out && !f.current) throw new Error('--out FILE is required (or --current PLACEMENT to only evaluate)');
      const method = f.method as PlanMethod;
      if (method !== 'eplb' && method !== 'best') throw new Error(`--method ${JSON.stringify(f.method)} must be eplb or best`);
      const format = f.format as PlacementFormat;
      if (!['json', 'sglang', 'vllm', 'vllm-ascend', 'trtllm'].includes(format)) throw new Error(`--format ${JSON.stringify(f.format)} must be json, sglang, vllm, vllm-ascend or trtllm`);
      const cur = f.current ? await readPlacementFile(f.current) : null;
      const numReplicas = intFlag(f.replicas, '--replicas', cur?.phy2log[0].length, MAX_SLOTS);
      const numGpus = intFlag(f.gpus, '--gpus', cur?.numGpus ?? undefined, MAX_GPUS);
      const numGroups = intFlag(f.groups, '--groups', 1, MAX_EXPERTS);
      const numNodes = intFlag(f.nodes, '--nodes', 1, MAX_NODES);
      const numExperts = f.experts === undefined ? undefined : intFlag(f.experts, '--experts', undefined, MAX_EXPERTS);
      const flagTopK = f.topK === undefined ? undefined : intFlag(f.topK, '--top-k', undefined, MAX_TOP_K);
      if (numNodes > numGpus || numGpus % numNodes !== 0) throw new Error(`--nodes ${numNodes} does not divide --gpus ${numGpus}: every node holds the same number of GPUs`);
      const grid = {
        ...(f.ep !== undefined ? { ep: intFlag(f.ep, '--ep', undefined, MAX_GPUS) } : {}), ...(f.etp !== undefined ? { etp: intFlag(f.etp, '--etp', undefined, MAX_GPUS) } : {}),
        ...(f.pp !== undefined ? { pp: intFlag(f.pp, '--pp', undefined, MAX_GPUS) } : {}),
      };
      const load = await readLoadFile(f.load, { numExperts, grid });
      const E = load.weight[0].length;
      let current: { name: string; balancedness: number[]; note: string } | undefined;
      if (cur && f.current) {
        const { rows, note } = alignPlacement(cur, load.layerIds, f.current);
        current = { name: `${cur.format}: ${f.current}`, balancedness: currentBalancedness(load.weight, rows, numGpus, load.layerIds, f.current), note };
      }
      if (numReplicas < E) throw new Error(`--replicas ${numReplicas} < ${E} experts in ${f.load}: every expert needs a slot`);
      const topK = flagTopK ?? Math.min(load.topK ?? 8, E);
      checkPlanSizes({ layers: load.weight.length, experts: E, replicas: numReplicas, gpus: numGpus, nodes: numNodes, groups: numGroups, topK });
      const report = planPlacement(load.weight, { numReplicas, numGroups, numNodes, numGpus, method, topK, keepNodes: !f.crossNode });
      // vllm-ascend keeps one slot per expert per device: move extra replicas of an expert off a GPU first
      const spread = format === 'vllm-ascend' ? spreadPlan(report.phy2log, load.weight, numGpus) : null;
      const out = format === 'sglang' ? toSglang(report.phy2log, load.layerIds, E)
        : format === 'vllm' ? toVllm(report.phy2log, E)
        : format === 'vllm-ascend' ? toVllmAscend(spread!.rows, numGpus)
        : format === 'trtllm' ? toTrtllm(report.phy2log, load.layerIds)
        : {
          format: 'switchyard-plan', version: 1, method, policy: report.policy,
          source: { file: f.load, format: load.format, notes: load.notes },
          numLogicalExperts: E, numReplicas, numGroups, numNodes, numGpus, layers: load.layerIds,
          phy2log: report.phy2log, log2phy: report.log2phy, logcnt: report.logcnt,
          balancedness: report.balancedness, balancednessEplb: report.balancednessEplb, balancednessBefore: report.balancednessBefore,
          improvedLayers: report.improvedLayers,
          interNode: { ...report.interNode, topKSource: f.topK !== undefined ? 'flag' : load.topK !== undefined ? 'trace' : 'default' },
        };
      if (format === 'sglang' || format === 'vllm-ascend' || format === 'trtllm') {
        // the engine's own loader rules, before anything reaches the disk
        checkForEngine(format, typeof out === 'string' ? parseYamlSafe(out) : out, { numExperts: E, epSize: numGpus, moeLayerIds: load.layerIds }, f.out ?? 'plan');
      }
      if (f.out) writeFileAtomic(f.out, typeof out === 'string' ? out : `${JSON.stringify(out)}\n`); // vllm: one JSONL record
      console.log(`plan: ${load.weight.length} layers × ${E} experts → ${numReplicas} slots on ${numGpus} GPUs in ${numNodes} nodes, ${report.policy} policy, method ${method}`);
      console.log(`load: ${f.load} (${load.format})${load.notes.length ? `; ${load.notes.join('; ')}` : ''}`);
      if (current) console.log(`current: ${f.current} (${cur!.format}, ${cur!.phy2log[0].length} slots on ${numGpus} GPUs; ${current.note})`);
      console.log(planSummary(report, load.layerIds, current));
      const hint = format === 'sglang' ? ` (SGLang: --init-expert-location ${f.out} --ep-num-redundant-experts ${numReplicas - E})`
        : format === 'vllm' ? ' (vLLM offline EPLB, PR #41141: eplb_config initial_mapping_path)'
        : format === 'vllm-ascend' ? ' (vllm-ascend: additional_config eplb_config expert_map_path)'
        : format === 'trtllm' ? ' (TensorRT-LLM: moe_config.load_balancer)' : '';
      if (spread && spread.swaps > 0) {
        console.log(`vllm-ascend: ${spread.swaps} slot swap${spread.swaps > 1 ? 's' : ''} so no device holds an expert twice; balancedness mean ${fix(summary(report.balancedness).mean)} → ${fix(summary(spread.balancedness).mean)}`);
      }
      if (f.out) console.log(`wrote ${f.out} (${format})${hint}`);
    });
}
