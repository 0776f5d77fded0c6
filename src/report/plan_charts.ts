/**
 * Reports of `switchyard plan` and `switchyard simulate` output: per-GPU load before (round-robin, no replicas)
 * and after placement, balancedness and inter-node volume per layer; per-strategy time breakdown (dispatch /
 * compute / combine, overlapped), per-layer times, and the expert-count sweep with its deployment recommendation.
 */
import { gpuLoads, roundRobinLoads } from '../plan/balancedness.ts';
import { mean } from '../metrics/balance.ts';
import type { LayerResult } from '../sim/simulate.ts';
import { barOption, barSeries, cell, COLORS, lineOption, pctCell, type ChartSpec, type Section, type TableSpec } from './charts.ts';
import type { PlanFile, SimFile } from './load.ts';
import type { Recommendation, SweepRow } from '../sim/sweep.ts';

const avg = (xs: number[]): number => mean(xs, NaN);

/** Plan header: deployment and balancedness summary (balancedness = mean GPU load / max GPU load). */
export function planTables(p: PlanFile): TableSpec[] {
  const bal = (xs: number[]) => (xs.length ? [cell(avg(xs)), cell(Math.min(...xs))] : ['–', '–']);
  return [
    {
      title: 'Deployment', header: ['setting', 'value'], rows: [
        ['method', p.method], ['policy', p.policy], ['layers', String(p.phy2log.length)], ['logical experts', String(p.numLogicalExperts)],
        ['physical slots per layer', `${p.numReplicas} (${p.numReplicas / p.numGpus} per GPU)`], ['GPUs', `${p.numGpus} in ${p.numNodes} nodes`],
        ['expert groups', String(p.numGroups)], ['load', `${p.source?.file ?? '?'} (${p.source?.format ?? '?'})`],
      ],
    },
    {
      title: 'Balancedness (mean / max GPU load; 1 = even)', header: ['placement', 'mean over layers', 'worst layer'], numeric: [1, 2], rows: [
        ['before (round-robin, no replicas)', ...bal(p.balancednessBefore)], ['EPLB', ...bal(p.balancednessEplb)], [`plan (${p.method})`, ...bal(p.balancedness)],
      ],
    },
    ...(p.interNode?.hierarchicalAfter?.length ? [{
      title: `Inter-node token copies per routed token (top-${p.interNode.topK}), mean over layers`, header: ['all-to-all', 'before', 'after'], numeric: [1, 2],
      rows: [['flat (any placement)', cell(p.interNode.flat), cell(p.interNode.flat)], ['hierarchical (node-dedup)', cell(avg(p.interNode.hierarchicalBefore)), cell(avg(p.interNode.hierarchicalAfter))]],
    }] : []),
  ];
}

/** The plan sections; `weight` [L][E] (the plan's load file) enables the per-GPU load charts. */
export function planSections(p: PlanFile, weight: number[][] | null): Section[] {
  const ids = p.layers.length === p.phy2log.length ? p.layers : p.phy2log.map((_, l) => l);
  const byLayer = (xs: number[]) => xs.map((v, l) => [ids[l], v] as [number, number]);
  const charts: ChartSpec[] = [{
    id: 'plan-bal', title: 'Balancedness per layer', caption: 'mean GPU load / max GPU load; 1 = every GPU equally loaded',
    option: lineOption('balancedness', [
      { name: 'before (round-robin)', data: byLayer(p.balancednessBefore), color: COLORS.before },
      { name: 'EPLB', data: byLayer(p.balancednessEplb), color: COLORS.eplb },
      { name: `plan (${p.method})`, data: byLayer(p.balancedness), color: COLORS.after },
    ], { xName: 'layer', yMax: 1 }),
  }];
  const v = p.interNode;
  if (v?.hierarchicalAfter?.length) {
    charts.push({
      id: 'plan-internode', title: 'Inter-node traffic per layer', caption: `expected inter-node token copies per routed token (top-${v.topK}); flat all-to-all sends ${cell(v.flat)} for any placement`,
      option: lineOption('copies per token', [
        { name: 'node-dedup, before', data: byLayer(v.hierarchicalBefore), color: COLORS.before },
        { name: 'node-dedup, after', data: byLayer(v.hierarchicalAfter), color: COLORS.after },
      ], { xName: 'layer', markY: { value: v.flat, label: 'flat' } }),
    });
  }
  const sections: Section[] = [{ title: 'Placement quality', charts }];
  if (weight) {
    const G = p.numGpus;
    const gpus = Array.from({ length: G }, (_, g) => String(g));
    const ratio = (xs: ArrayLike<number>) => { const m = mean(xs, 0); return Array.from(xs, (x) => (m > 0 ? x / m : 1)); };
    const perLayer = weight.map((w, l) => barSeries([
      { name: 'before (round-robin, no replicas)', data: ratio(roundRobinLoads(w, G)), color: COLORS.before },
      { name: `after (plan, ${p.method})`, data: ratio(gpuLoads(w, p.phy2log[l], G)), color: COLORS.after },
    ], { value: 1, label: 'even' }));
    const experts = Array.from({ length: p.numLogicalExperts }, (_, e) => `e${e}`);
    const replicas = (p.logcnt ?? []).map((row) => barSeries([{ name: 'replicas', data: row, color: COLORS.after }]));
    sections.push({
      title: 'Per-GPU load',
      intro: 'Load of each GPU ÷ mean GPU load for the selected layer (a replica carries load / replicas of its expert). 1 = even; the step time follows the maximum.',
      selectors: [{ id: 'gpu-layer', label: 'layer', options: ids.map((id) => `layer ${id}`) }],
      charts: [
        { id: 'plan-gpu', title: 'GPU load before and after placement', caption: 'per GPU, ÷ mean GPU load', wide: true, height: 320,
          option: barOption('GPU', gpus, 'load ÷ mean', []), layered: { selector: 'gpu-layer', series: perLayer } },
        ...(replicas.length === weight.length ? [{ id: 'plan-replicas', title: 'Replicas per expert', caption: 'physical copies of each logical expert in the selected layer', wide: true, height: 240,
          option: barOption('expert', experts, 'replicas', []), layered: { selector: 'gpu-layer', series: replicas } }] : []),
      ],
    });
  }
  return sections;
}

const ms = (s: number): number => 1e3 * s;

/** Simulate header: topology, model and the load that was priced. */
export function simTables(sim: SimFile, sweep = false): TableSpec[] {
  const t = sim.topology, m = sim.model;
  return [{
    title: sweep ? 'Simulated deployment (base model; the sweep varies experts and top-k)' : 'Simulated deployment', header: ['setting', 'value'], rows: [
      ['topology', `${t.name}: ${t.nodes} nodes × ${t.gpusPerNode} GPUs`], ['experts', `${m.experts}, top-${m.topK}`],
      ['tokens per GPU', String(m.tokensPerGpu)], ['hidden', String(m.hidden)], ['expert FFN', String(m.expertFfn ?? '–')], ['load', sim.load],
    ],
  }];
}

/** Per-layer simulate sections: time breakdown per strategy, per-layer times, compute balancedness, bytes. */
export function simSections(layers: LayerResult[]): Section[] {
  const m = (f: (r: LayerResult) => number) => avg(layers.map(f));
  const strat = ['flat', 'hierarchical'] as const;
  const part = (k: 'dispatch' | 'compute' | 'combine' | 'overlapped') => strat.map((s) => ms(m((r) => r[s][k])));
  const x = (r: LayerResult) => r.layer;
  const tables: TableSpec[] = [{
    title: `All ${layers.length} MoE layers, one forward pass`, header: ['all-to-all', 'no overlap (ms)', 'overlapped (ms)', 'comm efficiency'], numeric: [1, 2, 3],
    rows: strat.map((s) => [s, cell(ms(layers.reduce((a, r) => a + r[s].total, 0))), cell(ms(layers.reduce((a, r) => a + r[s].overlapped, 0))), pctCell(m((r) => r[s].efficiency))]),
  }];
  return [{
    title: 'Time per MoE layer',
    tables,
    charts: [
      { id: 'sim-breakdown', title: 'Time breakdown per strategy', caption: `mean over ${layers.length} layers; overlapped = best chunked pipeline`,
        option: barOption('all-to-all', [...strat], 'time per layer (ms)', [
          { name: 'dispatch', data: part('dispatch'), color: COLORS.comm, stack: 't' },
          { name: 'expert compute (slowest GPU)', data: part('compute'), color: COLORS.compute, stack: 't' },
          { name: 'combine', data: part('combine'), color: '#edc948', stack: 't' },
          { name: 'overlapped total', data: part('overlapped'), color: COLORS.maxShare },
        ]) },
      { id: 'sim-layers', title: 'Layer time', caption: 'per MoE layer, without and with chunked overlap',
        option: lineOption('time (ms)', [
          { name: 'flat', data: layers.map((r) => [x(r), ms(r.flat.total)]), color: COLORS.flat },
          { name: 'hierarchical', data: layers.map((r) => [x(r), ms(r.hierarchical.total)]), color: COLORS.hierarchical },
          { name: 'flat, overlapped', data: layers.map((r) => [x(r), ms(r.flat.overlapped)]), color: COLORS.flat, dashed: true },
          { name: 'hierarchical, overlapped', data: layers.map((r) => [x(r), ms(r.hierarchical.overlapped)]), color: COLORS.hierarchical, dashed: true },
        ], { xName: 'layer', yMin: 0 }) },
      { id: 'sim-bal', title: 'Compute balancedness per layer', caption: 'mean GPU compute / max GPU compute of the placement; 1 = even',
        option: lineOption('balancedness', [{ name: 'balancedness', data: layers.map((r) => [x(r), r.balancedness]), color: COLORS.after }], { xName: 'layer', yMax: 1 }) },
      { id: 'sim-bytes', title: 'Dispatch bytes per GPU', caption: 'max over GPUs, mean over layers',
        option: barOption('all-to-all', [...strat], 'MB sent per GPU', [
          { name: 'inter-node', data: strat.map((s) => m((r) => r[s].interBytes) / 1e6), color: COLORS.comm },
          { name: 'NVLink', data: strat.map((s) => m((r) => r[s].intraBytes) / 1e6), color: COLORS.compute },
        ]) },
    ],
  }];
}

/** Expert-count sweep and deployment recommendation sections. */
export function sweepSections(rows: SweepRow[], rec: Recommendation[]): Section[] {
  const cats = rows.map((r) => `E=${r.experts} k=${r.topK}`);
  const sections: Section[] = [{
    title: 'Expert sweep',
    intro: 'gain = time of a dense FFN with the same parameters on the same tokens / MoE layer time; overhead = communication / compute.',
    tables: [{
      title: 'Sweep', header: ['experts', 'top-k', 'GPUs', 'nodes', 'compute (ms)', 'flat comm (ms)', 'flat gain', 'hier comm (ms)', 'hier gain'], numeric: [0, 1, 2, 3, 4, 5, 6, 7, 8],
      rows: rows.map((r) => [String(r.experts), String(r.topK), String(r.gpus), String(r.nodes), cell(ms(r.compute)), cell(ms(r.flat.comm)), `${cell(r.flat.gain, 3)}×`, cell(ms(r.hierarchical.comm)), `${cell(r.hierarchical.gain, 3)}×`]),
    }],
    charts: [
      { id: 'sweep-gain', title: 'Throughput gain over dense', caption: 'dense FFN time / MoE layer time (no overlap)',
        option: barOption('experts, top-k', cats, 'gain (×)', [
          { name: 'flat', data: rows.map((r) => r.flat.gain), color: COLORS.flat }, { name: 'hierarchical', data: rows.map((r) => r.hierarchical.gain), color: COLORS.hierarchical },
        ], { markY: { value: 1, label: 'dense' } }) },
      { id: 'sweep-overhead', title: 'Communication overhead', caption: '(layer time − compute) / compute',
        option: barOption('experts, top-k', cats, 'overhead (%)', [
          { name: 'flat', data: rows.map((r) => 100 * r.flat.overhead), color: COLORS.flat }, { name: 'hierarchical', data: rows.map((r) => 100 * r.hierarchical.overhead), color: COLORS.hierarchical },
        ]) },
    ],
  }];
  if (rec.length) {
    const sizes = rec.map((r) => `${r.gpus} GPUs`);
    sections.push({
      title: 'Deployment recommendation',
      tables: [{ title: 'Recommendation', header: ['GPUs', 'nodes', 'flat (ms)', 'hierarchical (ms)', 'use', 'redundant slots/GPU', 'balancedness'], numeric: [0, 1, 2, 3, 5, 6],
        rows: rec.map((r) => [String(r.gpus), String(r.nodes), cell(ms(r.flat)), cell(ms(r.hierarchical)), r.strategy, String(r.redundantPerGpu), cell(r.balancedness)]) }],
      charts: [{ id: 'sweep-rec', title: 'Layer time by cluster size', caption: 'best chunked overlap, mean over the priced layers', wide: true, height: 280,
        option: barOption('cluster', sizes, 'time per layer (ms)', [
          { name: 'flat', data: rec.map((r) => ms(r.flat)), color: COLORS.flat }, { name: 'hierarchical', data: rec.map((r) => ms(r.hierarchical)), color: COLORS.hierarchical },
        ]) }],
    });
  }
  return sections;
}
