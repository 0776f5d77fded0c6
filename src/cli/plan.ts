/**
 * `switchyard plan`: expert replication and placement from load statistics (EPLB or our planner), written as
 * Switchyard JSON, SGLang's --init-expert-location JSON or vLLM's offline-EPLB mapping JSONL.
 */
import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.ts';
import { readLoadFile } from '../plan/load_formats.ts';
import { toSglang, toVllm, type PlacementFormat } from '../plan/placement_io.ts';
import { planPlacement, summary, type PlanMethod, type PlanReport } from '../plan/planner.ts';
import { fix, formatTable } from '../report/terminal.ts';
import { MAX_EXPERTS, MAX_GPUS, MAX_MATRIX_CELLS, MAX_NODES, MAX_SLOTS, MAX_TOP_K } from '../limits.ts';

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
  topK?: string; experts?: string; crossNode?: boolean; out?: string;
}

/** The printed summary: mean/min balancedness before, EPLB, chosen; inter-node copies; per-layer rows when few. */
export function planSummary(r: PlanReport, layerIds: number[]): string {
  const row = (name: string, xs: number[]): string[] => { const s = summary(xs); return [name, fix(s.mean), fix(s.min)]; };
  const lines = [formatTable(['balancedness (mean/max GPU load)', 'mean', 'min'], [
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
  if (layerIds.length <= 8) {
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
    .option('--format <f>', 'output: json (Switchyard plan), sglang (--init-expert-location), vllm (offline-EPLB mapping JSONL)', 'json')
    .option('--top-k <k>', 'experts per token for the inter-node volume (default: from the trace, else 8)')
    .option('--experts <n>', 'logical experts, when the load file cannot tell (Megatron traces)')
    .option('--cross-node', 'let our planner move experts across nodes under the hierarchical policy')
    .option('--out <file>', 'output file (written atomically)')
    .action(async (f: PlanFlags) => {
      if (!f.load) throw new Error('--load FILE is required');
      if (!f.out) throw new Error('--out FILE is required');
      const method = f.method as PlanMethod;
      if (method !== 'eplb' && method !== 'best') throw new Error(`--method ${JSON.stringify(f.method)} must be eplb or best`);
      const format = f.format as PlacementFormat;
      if (!['json', 'sglang', 'vllm'].includes(format)) throw new Error(`--format ${JSON.stringify(f.format)} must be json, sglang or vllm`);
      const numReplicas = intFlag(f.replicas, '--replicas', undefined, MAX_SLOTS);
      const numGpus = intFlag(f.gpus, '--gpus', undefined, MAX_GPUS);
      const numGroups = intFlag(f.groups, '--groups', 1, MAX_EXPERTS);
      const numNodes = intFlag(f.nodes, '--nodes', 1, MAX_NODES);
      const numExperts = f.experts === undefined ? undefined : intFlag(f.experts, '--experts', undefined, MAX_EXPERTS);
      const flagTopK = f.topK === undefined ? undefined : intFlag(f.topK, '--top-k', undefined, MAX_TOP_K);
      if (numNodes > numGpus || numGpus % numNodes !== 0) throw new Error(`--nodes ${numNodes} does not divide --gpus ${numGpus}: every node holds the same number of GPUs`);
      const load = await readLoadFile(f.load, { numExperts });
      const E = load.weight[0].length;
      if (numReplicas < E) throw new Error(`--replicas ${numReplicas} < ${E} experts in ${f.load}: every expert needs a slot`);
      const topK = flagTopK ?? Math.min(load.topK ?? 8, E);
      checkPlanSizes({ layers: load.weight.length, experts: E, replicas: numReplicas, gpus: numGpus, nodes: numNodes, groups: numGroups, topK });
      const report = planPlacement(load.weight, { numReplicas, numGroups, numNodes, numGpus, method, topK, keepNodes: !f.crossNode });
      const out = format === 'sglang' ? toSglang(report.phy2log, load.layerIds, E)
        : format === 'vllm' ? toVllm(report.phy2log, E)
        : {
          format: 'switchyard-plan', version: 1, method, policy: report.policy,
          source: { file: f.load, format: load.format, notes: load.notes },
          numLogicalExperts: E, numReplicas, numGroups, numNodes, numGpus, layers: load.layerIds,
          phy2log: report.phy2log, log2phy: report.log2phy, logcnt: report.logcnt,
          balancedness: report.balancedness, balancednessEplb: report.balancednessEplb, balancednessBefore: report.balancednessBefore,
          improvedLayers: report.improvedLayers,
          interNode: { ...report.interNode, topKSource: f.topK !== undefined ? 'flag' : load.topK !== undefined ? 'trace' : 'default' },
        };
      writeFileAtomic(f.out, `${JSON.stringify(out)}\n`); // vllm: one JSONL record
      console.log(`plan: ${load.weight.length} layers × ${E} experts → ${numReplicas} slots on ${numGpus} GPUs in ${numNodes} nodes, ${report.policy} policy, method ${method}`);
      console.log(`load: ${f.load} (${load.format})${load.notes.length ? `; ${load.notes.join('; ')}` : ''}`);
      console.log(planSummary(report, load.layerIds));
      const hint = format === 'sglang' ? ` (SGLang: --init-expert-location ${f.out} --ep-num-redundant-experts ${numReplicas - E})`
        : format === 'vllm' ? ' (vLLM offline EPLB, PR #41141: eplb_config initial_mapping_path)' : '';
      console.log(`wrote ${f.out} (${format})${hint}`);
    });
}
