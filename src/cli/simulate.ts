/**
 * `switchyard simulate`: prices MoE layers on a topology (alpha–beta links, NIC contention, straggler GPU) for flat
 * and hierarchical all-to-all, with and without chunked overlap, optionally on static vs adaptive inter-node paths
 * (`--paths`); `--sweep` gives the expert-count table and a
 * deployment recommendation by cluster size.
 */
import type { Command } from 'commander';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../io/atomic.ts';
import { readLoadFile } from '../plan/load_formats.ts';
import { readPlacement } from '../plan/placement_io.ts';
import { calibrate, readCalibrationSet } from '../sim/calibration.ts';
import { CALIBRATED } from '../sim/calibrated.ts';
import { readModelShape, type ModelShapeConfig } from '../sim/model_shape.ts';
import { maxFlowCount, MAX_FLOWS, type PathMode } from '../sim/paths.ts';
import { parseLoadSpec, simulate, sumLayers, type LayerResult, type LoadSpec, type StrategyResult } from '../sim/simulate.ts';
import { parseSweep, recommend, runSweep } from '../sim/sweep.ts';
import { fix, formatTable, mb, ms, pct } from '../report/terminal.ts';
import { readTopology, type Topology } from '../sim/topology.ts';
import { hasSeveralPaths } from '../sim/topology_routing.ts';

interface SimFlags {
  topology?: string; model?: string; load: string[]; placement?: string; sweep?: string[]; out?: string; experts?: string;
  tokensPerGpu?: string; hidden?: string; topK?: string; expertFfn?: string; layers?: string;
  dispatchBytes?: string; combineBytes?: string; chunks?: string; slotsPerGpu?: string; paths?: string; rerouteThreshold?: string;
  calibrate?: string | boolean;
}

/** The published rows shipped with the project. */
const PUBLISHED = fileURLToPath(new URL('../../configs/calibration/published.yaml', import.meta.url));

/** `--calibrate [FILE]`: fits the link constants on the rows marked fit and prints ours vs theirs for every row. */
async function printCalibration(file: string, out?: string): Promise<void> {
  const set = await readCalibrationSet(file);
  const r = calibrate(set);
  const c = r.constants;
  console.log(`calibration: ${set.rows.length} published figures (${relative(process.cwd(), file)}); fitted on the ${set.rows.filter((x) => x.fit).length} rows marked fit:`);
  console.log(`  NVLink efficiency ${c.nvlinkEfficiency}, NIC efficiency ${c.nicEfficiency}, phase overhead ${c.phaseOverheadUs} µs` +
    ` (per-message latencies ${c.nvlinkLatencyUs} / ${c.nicLatencyUs} µs, not fitted)`);
  console.log(formatTable(['row', 'metric', 'theirs', 'ours', 'ours/theirs', 'used'],
    r.rows.map((x) => [x.id, x.metric === 'us' ? 'µs' : 'GB/s', fix(x.published, 1), fix(x.ours, 1), fix(x.ratio, 3), x.fit ? 'fit' : 'held out'])));
  console.log(`|ours/theirs − 1|: max ${pct(r.maxError)}, median ${pct(r.medianError)}; held-out rows max ${pct(r.heldOutMaxError)}`);
  const same = (Object.keys(CALIBRATED) as (keyof typeof CALIBRATED)[]).every((k) => CALIBRATED[k] === c[k]);
  console.log(same ? 'the simulator\'s defaults (src/sim/calibrated.ts) equal this fit' : `the simulator's defaults differ from this fit: ${JSON.stringify(CALIBRATED)}`);
  console.log('sources:');
  for (const [name, src] of Object.entries(set.sources)) console.log(`  ${name}: ${src.repository ? `${src.repository} ${src.file} @ ${src.commit}` : src.url}`);
  if (out) writeFileAtomic(out, `${JSON.stringify(r, null, 1)}\n`);
}

/** Numeric model flags → schema keys (validated by the schema, which names the field). */
function modelOverrides(f: SimFlags): Partial<ModelShapeConfig> {
  const num = (v: string | undefined, flag: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`${flag} ${JSON.stringify(v)} is not a number`);
    return n;
  };
  return {
    tokens_per_gpu: num(f.tokensPerGpu, '--tokens-per-gpu'), hidden: num(f.hidden, '--hidden'), experts: num(f.experts, '--experts'),
    top_k: num(f.topK, '--top-k'), expert_ffn: num(f.expertFfn, '--expert-ffn'), layers: num(f.layers, '--layers'),
    dispatch_bytes: num(f.dispatchBytes, '--dispatch-bytes'), combine_bytes: num(f.combineBytes, '--combine-bytes'),
    overlap_chunks: num(f.chunks, '--chunks'), slots_per_gpu: num(f.slotsPerGpu, '--slots-per-gpu'),
  };
}

/** --load uniform | zipf:S[:SEED] | trace FILE (or trace:FILE). */
async function loadSpec(words: string[], experts?: number): Promise<{ spec: LoadSpec; label: string }> {
  const [head, file] = words[0]?.startsWith('trace:') ? ['trace', words[0].slice(6)] : words;
  if (head === 'trace') {
    if (!file) throw new Error('--load trace needs a FILE');
    const data = await readLoadFile(file, { numExperts: experts });
    return { spec: { kind: 'trace', weight: data.weight }, label: `trace ${file} (${data.format}, ${data.weight.length} layers)` };
  }
  if (words.length !== 1) throw new Error(`--load ${words.join(' ')}: expected one of uniform, zipf:S[:SEED], trace FILE`);
  return { spec: parseLoadSpec(head), label: head };
}

/** --paths static|adaptive|both; default both when some node pair has several paths (and the flows fit), else none. */
function pathModes(f: SimFlags, topo: Topology): { modes: PathMode[]; note?: string } {
  if (f.paths === undefined) {
    if (!hasSeveralPaths(topo)) return { modes: [] };
    if (maxFlowCount(topo) > MAX_FLOWS) return { modes: [], note: `static vs adaptive paths skipped: up to ${maxFlowCount(topo)} inter-node flows per layer exceed ${MAX_FLOWS}` };
    return { modes: ['static', 'adaptive'] };
  }
  switch (f.paths) {
    case 'static': return { modes: ['static'] };
    case 'adaptive': return { modes: ['adaptive'] };
    case 'both': return { modes: ['static', 'adaptive'] };
    default: throw new Error(`--paths ${JSON.stringify(f.paths)}: expected static, adaptive or both`);
  }
}

/** Mean over layers of each timing field of the strategy that `pick` selects. */
function meanStrategy(rs: LayerResult[], pick: (r: LayerResult) => StrategyResult): StrategyResult {
  const m = (f: (s: StrategyResult) => number): number => sumLayers(rs, (r) => f(pick(r))) / rs.length;
  const s = pick(rs[0]);
  return {
    ...s, dispatch: m((x) => x.dispatch), compute: m((x) => x.compute), combine: m((x) => x.combine), total: m((x) => x.total),
    overlapped: m((x) => x.overlapped), interBytes: m((x) => x.interBytes), intraBytes: m((x) => x.intraBytes),
    overhead: m((x) => x.total - x.compute) / m((x) => x.compute), efficiency: m((x) => x.compute) / m((x) => x.total),
    overlappedOverhead: m((x) => x.overlapped - x.compute) / m((x) => x.compute), overlappedEfficiency: m((x) => x.compute) / m((x) => x.overlapped),
  };
}

/** The per-layer table: one row per (name, strategy), no overlap and overlapped; extra columns appended per row. */
function layerTable(rows: Array<[string, StrategyResult, ...string[]]>, extra: string[] = []): string {
  const row = ([name, s, ...more]: [string, StrategyResult, ...string[]]): string[] => [name, ms(s.dispatch), ms(s.compute), ms(s.combine), ms(s.total),
    pct(s.overhead), fix(s.efficiency), ms(s.overlapped), String(s.chunks), pct(s.overlappedOverhead), fix(s.overlappedEfficiency), ...more];
  return formatTable(['all-to-all', 'dispatch ms', 'compute ms', 'combine ms', 'total ms', 'comm overhead', 'comm eff',
    'overlapped ms', 'chunks', 'overhead', 'eff', ...extra], rows.map(row));
}

/** Prints the static vs adaptive paths table (means over layers) and the one-forward sums. */
function printPaths(rs: LayerResult[], topo: Topology, modes: PathMode[], threshold: number | undefined): void {
  const S = topo.fabric?.spineLinks;
  const where = `${topo.nicsPerNode} NIC${topo.nicsPerNode > 1 ? 's' : ''} (rails) per node` +
    (topo.fabric ? `, ${Math.ceil(topo.nodes / topo.fabric.nodesPerLeaf)} leaves of ${topo.fabric.nodesPerLeaf} nodes × ${S} spine uplinks (${fix(topo.fabric.spineBw / 1e9, 1)} GB/s each)` : ', non-blocking fabric');
  console.log(`paths: ${where}; static = own NIC + ECMP hash, adaptive = re-route when ${pct(threshold ?? 0.05)} cheaper; per MoE layer, mean over ${rs.length} layers:`);
  const rows: Array<[string, StrategyResult, ...string[]]> = [];
  for (const key of ['flat', 'hierarchical'] as const) {
    for (const mode of modes) {
      const moved = sumLayers(rs, (r) => r.paths![mode]!.rerouted[key]) / rs.length;
      rows.push([`${key} ${mode}`, meanStrategy(rs, (r) => r.paths![mode]![key]), pct(moved)]);
    }
  }
  console.log(layerTable(rows, ['rerouted']));
  const sum = (mode: PathMode, key: 'flat' | 'hierarchical', f: (s: StrategyResult) => number): string => ms(sumLayers(rs, (r) => f(r.paths![mode]![key])));
  console.log(`all ${rs.length} MoE layers (one forward): ` + (['flat', 'hierarchical'] as const).map((key) =>
    `${key} ${modes.map((mode) => `${mode} ${sum(mode, key, (s) => s.total)} ms (overlapped ${sum(mode, key, (s) => s.overlapped)})`).join(', ')}`).join('; '));
}

/** Adds `switchyard simulate`. */
export function register(program: Command): void {
  program
    .command('simulate')
    .description('price MoE all-to-all and expert compute on a cluster topology (flat vs hierarchical, overlap)')
    .option('--topology <file>', 'topology YAML (configs/topology-*.yaml)')
    .option('--model <file>', 'model shape YAML (configs/sim-model.yaml); flags below override it')
    .option('--tokens-per-gpu <n>').option('--hidden <n>').option('--experts <n>').option('--top-k <k>')
    .option('--expert-ffn <n>').option('--layers <n>').option('--dispatch-bytes <b>').option('--combine-bytes <b>')
    .option('--chunks <c>', 'most overlap chunks').option('--slots-per-gpu <s>')
    .option('--load <spec...>', 'uniform | zipf:S[:SEED] | trace FILE', ['uniform'])
    .option('--placement <file>', 'plan JSON, SGLang physical_to_logical_map JSON or vLLM mapping JSONL (default: slot i → expert i mod E)')
    .option('--sweep <spec...>', 'expert sweep, e.g. experts=8,32,64,128 top_k=2,2,4,4 (plus a recommendation by cluster size)')
    .option('--paths <mode>', 'static | adaptive | both: inter-node routes over rails and spines (default both when the topology has several paths)')
    .option('--reroute-threshold <t>', 'adaptive paths re-route a flow when another path is this share cheaper (default 0.05)')
    .option('--calibrate [file]', 'fit the link constants to published measurements and print ours vs theirs (default: configs/calibration/published.yaml)')
    .option('--out <file>', 'write all results as JSON (atomically)')
    .action(async (f: SimFlags) => {
      if (f.calibrate) return printCalibration(typeof f.calibrate === 'string' ? f.calibrate : PUBLISHED, f.out);
      if (!f.topology) throw new Error('--topology FILE is required');
      const topo = await readTopology(f.topology);
      const shape = await readModelShape(f.model, modelOverrides(f));
      const { spec, label } = await loadSpec(f.load, shape.experts);
      console.log(`topology: ${topo.name} (${topo.gpus} GPUs in ${topo.nodes} nodes)`);
      if (f.sweep) {
        const rows = runSweep(topo, shape, parseSweep(f.sweep), spec);
        console.log(`expert sweep: ${shape.tokensPerGpu} tokens/GPU, hidden ${shape.hidden}, expert_ffn ${shape.expertFfn}, load ${label}, one expert per GPU, no overlap`);
        console.log(formatTable(['experts', 'top_k', 'GPUs', 'nodes', 'compute ms', 'flat comm ms', 'overhead', 'comm eff', 'gain', 'hier comm ms', 'overhead', 'comm eff', 'gain'],
          rows.map((r) => [String(r.experts), String(r.topK), String(r.gpus), String(r.nodes), ms(r.compute),
            ms(r.flat.comm), `+${pct(r.flat.overhead)}`, fix(r.flat.efficiency, 2), `${fix(r.flat.gain, 1)}x`,
            ms(r.hierarchical.comm), `+${pct(r.hierarchical.overhead)}`, fix(r.hierarchical.efficiency, 2), `${fix(r.hierarchical.gain, 1)}x`])));
        console.log('gain = time of a dense FFN with the same parameters (experts × expert_ffn) on the same tokens / MoE layer time');
        const rec = recommend(topo, shape, spec);
        console.log(`deployment recommendation (${shape.experts} experts, top-${shape.topK}, load ${label}, best chunked overlap):`);
        console.log(formatTable(['GPUs', 'nodes', 'flat ms', 'hierarchical ms', 'use', 'redundant slots/GPU', 'balancedness'],
          rec.map((r) => [String(r.gpus), String(r.nodes), ms(r.flat), ms(r.hierarchical), r.strategy, String(r.redundantPerGpu), fix(r.balancedness)])));
        if (f.out) writeFileAtomic(f.out, `${JSON.stringify({ topology: topo, model: shape, load: label, sweep: rows, recommendation: rec }, null, 1)}\n`);
        return;
      }
      const placement = f.placement ? await readPlacement(f.placement) : undefined;
      const { modes, note } = pathModes(f, topo);
      const threshold = f.rerouteThreshold === undefined ? undefined : Number(f.rerouteThreshold);
      if (threshold !== undefined && !(threshold >= 0 && threshold < 1)) throw new Error(`--reroute-threshold ${JSON.stringify(f.rerouteThreshold)}: expected a number in [0, 1)`);
      const t0 = performance.now();
      const rs = simulate(topo, shape, spec, placement, { paths: modes, threshold });
      const elapsed = performance.now() - t0;
      const slots = placement ? placement[0].length / topo.gpus : shape.slotsPerGpu ?? Math.ceil(shape.experts / topo.gpus);
      console.log(`model: ${rs.length} MoE layers, ${shape.experts} experts top-${shape.topK}, ${shape.tokensPerGpu} tokens/GPU, hidden ${shape.hidden}, expert_ffn ${shape.expertFfn}`);
      console.log(`load: ${label}; placement: ${f.placement ?? `default (slot i → expert i mod ${shape.experts})`}, ${slots} slots/GPU; ` +
        `compute balancedness mean ${fix(sumLayers(rs, (r) => r.balancedness) / rs.length)}`);
      const flat = meanStrategy(rs, (r) => r.flat), hier = meanStrategy(rs, (r) => r.hierarchical);
      console.log(`per MoE layer, mean over ${rs.length} layers${topo.fabric ? ' (each GPU on its own NIC, fabric taken as non-blocking)' : ''}:`);
      console.log(layerTable([['flat', flat], ['hierarchical', hier]]));
      console.log(`dispatch bytes sent per GPU: flat ${mb(flat.interBytes)} inter-node + ${mb(flat.intraBytes)} NVLink; ` +
        `hierarchical ${mb(hier.interBytes)} inter-node + ${mb(hier.intraBytes)} NVLink`);
      console.log(`all ${rs.length} MoE layers (one forward): flat ${ms(sumLayers(rs, (r) => r.flat.total))} ms (overlapped ${ms(sumLayers(rs, (r) => r.flat.overlapped))}), ` +
        `hierarchical ${ms(sumLayers(rs, (r) => r.hierarchical.total))} ms (overlapped ${ms(sumLayers(rs, (r) => r.hierarchical.overlapped))}); simulated in ${elapsed.toFixed(0)} ms`);
      if (modes.length) printPaths(rs, topo, modes, threshold);
      if (note) console.log(note);
      if (f.out) writeFileAtomic(f.out, `${JSON.stringify({ topology: topo, model: shape, load: label, layers: rs }, null, 1)}\n`);
    });
}
