/**
 * Fuzz of every size a user or a file can hand Switchyard: seeded random values (with 1e9, 1e308, 2^53,
 * negative, non-integer, ±Infinity, NaN always among them) go into every integer field of the run config,
 * the plan and simulate flags and files, the ids inside load traces and placements, and the sizes inside
 * report inputs. Each must be accepted only when it is a sane integer, and otherwise refused cleanly: an Error
 * (not a TypeError/RangeError from inside a reader) naming the field and the value, with the process's memory
 * staying within a fixed bound. The work is a fixed number of cases (no clock).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { intFlag } from '../src/cli/plan.ts';
import { DEFAULT_CONFIG, parseConfig } from '../src/config/load.ts';
import { parseYamlSafe } from '../src/io/yaml_safe.ts';
import { MAX_EXPERTS, MAX_GPUS, MAX_NODES, MAX_SLOTS } from '../src/limits.ts';
import { readLoadFile } from '../src/plan/load_formats.ts';
import { readPlacement } from '../src/plan/placement_io.ts';
import { planPlacement } from '../src/plan/planner.ts';
import { readReportInputSync, readRun } from '../src/report/load.ts';
import { ModelShapeSchema } from '../src/sim/model_shape.ts';
import { parseSweep } from '../src/sim/sweep.ts';
import { TopologySchema, parseYaml, toTopology } from '../src/sim/topology.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-fuzz-sizes-'));
/** Resident memory may grow by at most this much over the whole fuzz (a 1e9-sized allocation would blow it). */
const MEMORY_BOUND = 512 * 1024 ** 2;
const RANDOM_PER_FIELD = 6;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
}
const rnd = lcg(20261202);
const SPECIALS = [1e9, 1e308, 2 ** 53, 2 ** 31, -1, -1e9, 0.5, 2.5, 1e9 + 0.5, Infinity, -Infinity, NaN];

/** The specials plus random magnitudes 10^0..10^308, either sign, integer or not. */
function values(): number[] {
  const out = [...SPECIALS];
  for (let i = 0; i < RANDOM_PER_FIELD; i++) {
    const mag = 10 ** (rnd() * 308);
    const v = rnd() < 0.5 ? Math.round(mag) : mag * (1 + rnd());
    out.push(rnd() < 0.2 ? -v : v);
  }
  return out;
}

/** Accepted values must be sane integers; anything else a clean refusal naming the field (and the value, where the text can hold it). */
const sane = (v: number) => Number.isSafeInteger(v) && v >= 0 && v <= 2 ** 32;
let peak = 0;
const rss0 = process.memoryUsage().rss;
let cases = 0;

async function expectClean(field: string, v: number, run: () => unknown, showsValue = Number.isFinite(v)): Promise<void> {
  cases++;
  let err: unknown = null;
  try {
    await run();
  } catch (e) {
    err = e;
  }
  peak = Math.max(peak, process.memoryUsage().rss - rss0);
  if (err === null) {
    expect(sane(v), `${field} = ${v} was accepted`).toBe(true);
    return;
  }
  expect(err, `${field} = ${v}`).toBeInstanceOf(Error);
  const e = err as Error;
  expect(['TypeError', 'RangeError', 'ReferenceError'], `${field} = ${v}: ${e.message}`).not.toContain(e.name);
  expect(e.message, `${field} = ${v}`).toContain(field);
  if (showsValue) expect(e.message, `${field} = ${v}`).toContain(String(v));
}

/** Every integer field of the run config (a field that refuses 1.5 as "not an integer"), as dotted paths. */
function integerFields(): string[] {
  const out: string[] = [];
  const walk = (o: Record<string, unknown>, pre: string) => {
    for (const [k, v] of Object.entries(o)) {
      const p = pre ? `${pre}.${k}` : k;
      if (v !== null && typeof v === 'object') { walk(v as Record<string, unknown>, p); continue; }
      try { parseConfig(setAt({}, p, 1.5)); } catch (e) { if (/an integer/.test((e as Error).message)) out.push(p); }
    }
  };
  walk(DEFAULT_CONFIG as unknown as Record<string, unknown>, '');
  return out;
}

function setAt(obj: Record<string, unknown>, dotted: string, v: unknown): Record<string, unknown> {
  const out = structuredClone(obj);
  const segs = dotted.split('.');
  let cur = out;
  for (const s of segs.slice(0, -1)) cur = (cur[s] ??= {}) as Record<string, unknown>;
  cur[segs[segs.length - 1]] = v;
  return out;
}

function writeFile(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

describe('random sizes are refused cleanly, within a memory bound', () => {
  it('run config: every integer field', async () => {
    const fields = integerFields();
    // the size fields named in the config's schema must all be found by the probe
    for (const f of ['layers', 'dim', 'heads', 'expert_num', 'top_k', 'expert_hidden', 'fine_grained', 'dense_hidden', 'batch_size', 'seq_len', 'grad_accum_steps', 'eval_batches', 'data.bpe_vocab', 'data.max_chars', 'parallel.ep_size', 'router.sinkhorn_iterations', 'balance.gate_adjust.window']) {
      expect(fields).toContain(f);
    }
    for (const f of fields) for (const v of values()) await expectClean(f, v, () => parseConfig(setAt({}, f, v)));
    expect(peak).toBeLessThan(MEMORY_BOUND);
  });

  it('plan flags, topology and model-shape files, --sweep', async () => {
    const flags: Array<[string, number]> = [['--replicas', MAX_SLOTS], ['--gpus', MAX_GPUS], ['--nodes', MAX_NODES], ['--experts', MAX_EXPERTS], ['--top-k', 1024]];
    for (const [flag, max] of flags) for (const v of values()) await expectClean(flag, v, () => intFlag(String(v), flag, undefined, max));
    const topo = parseYamlSafe(fs.readFileSync('configs/topology-tiny.yaml', 'utf8')) as Record<string, unknown>;
    for (const f of ['nodes', 'gpus_per_node', 'inter_node.nics_per_node']) {
      // JSON has no Infinity/NaN: those reach the schema as null, so the value cannot be named
      for (const v of values()) await expectClean(f, v, () => toTopology(parseYaml(JSON.stringify(setAt(topo, f, v)), TopologySchema, 'topology')));
    }
    const shape = parseYamlSafe(fs.readFileSync('configs/sim-model-switch.yaml', 'utf8')) as Record<string, unknown>;
    for (const f of ['tokens_per_gpu', 'hidden', 'experts', 'top_k', 'expert_ffn', 'layers', 'overlap_chunks', 'slots_per_gpu']) {
      for (const v of values()) await expectClean(f, v, () => parseYaml(JSON.stringify(setAt(shape, f, v)), ModelShapeSchema, 'model'));
    }
    for (const v of values()) await expectClean('experts', v, () => parseSweep([`experts=${v}`, 'top_k=1']), false);
    expect(peak).toBeLessThan(MEMORY_BOUND);
  });

  it('load readers: expert ids, layer ids and top-k in traces, p2l maps, CSV layer column, --experts; placement ids', async () => {
    const line = (o: Record<string, unknown>) => `${JSON.stringify({ step: 0, block: 'decoder', layer: 0, rank: 0, num_tokens: 1, topk: 1, top_indices: [[0]], ...o })}\n`;
    for (const v of values()) {
      // JSON cannot carry ±Infinity/NaN: those become null and are refused as not a number (value not nameable)
      const fin = Number.isFinite(v);
      await expectClean('top_indices', v, () => readLoadFile(writeFile('t1.jsonl', line({ top_indices: [[v]] }))), fin);
      await expectClean('layer', v, () => readLoadFile(writeFile('t2.jsonl', line({ layer: v }))), fin);
      // a non-finite topk arrives as null, which means "take k from top_indices": accepted by design
      if (fin) await expectClean('topk', v, () => readLoadFile(writeFile('t3.jsonl', line({ topk: v, top_indices: [[0]] }))));
      const vllm = `${JSON.stringify({ record_type: 'eplb_load_stats', step: 0, expert_load: [[1, 1]], p2l_map: [[v, 0]] })}\n`;
      await expectClean('p2l_map', v, () => readLoadFile(writeFile('v.jsonl', vllm)), fin);
      await expectClean('layer', v, () => readLoadFile(writeFile('m.csv', `layer,e0,e1\n${v},1,2\n`)));
      await expectClean('experts', v, () => readLoadFile(writeFile('ok.json', '[[1,2],[3,4]]'), { numExperts: v }));
      await expectClean('phy2log', v, () => readPlacement(writeFile('p.json', JSON.stringify({ phy2log: [[0, v]] }))), fin);
    }
    expect(peak).toBeLessThan(MEMORY_BOUND);
  });

  it('report inputs: plan sizes, metrics ep ranks, simulate sizes', async () => {
    const weight = [[5, 1, 3, 2], [1, 1, 6, 2]];
    const r = planPlacement(weight, { numReplicas: 8, numGroups: 1, numNodes: 1, numGpus: 2, method: 'eplb', topK: 2 });
    const plan = { format: 'switchyard-plan', version: 1, ...r, source: { file: 'x', format: 'matrix', notes: [] }, numLogicalExperts: 4, numReplicas: 8, numGroups: 1, numNodes: 1, numGpus: 2, layers: [0, 1] };
    const rec = { step: 1, loss: 1, aux: {}, lr: 1e-3, grad_norm: 1, tokens_per_s: 1, expert_load: [[1, 2]], dropped: [0], load_cv: 0, max_load_share: 0.5, maxvio: 0, router_entropy: 0.6 };
    const run = path.join(tmp, 'run');
    fs.mkdirSync(run, { recursive: true });
    const sim = { topology: { name: 't', nodes: 1, gpusPerNode: 2, gpus: 2 }, model: { experts: 4, topK: 2, tokensPerGpu: 8, hidden: 8 }, load: 'uniform', layers: [] };
    for (const v of values()) {
      const fin = Number.isFinite(v);
      for (const k of ['numGpus', 'numLogicalExperts', 'numReplicas', 'numNodes']) {
        await expectClean(k, v, () => readReportInputSync(writeFile('plan.json', JSON.stringify({ ...plan, [k]: v }))), fin);
      }
      fs.writeFileSync(path.join(run, 'metrics.jsonl'), `${JSON.stringify({ ...rec, ep: [{ rank: v, compute_ms: 1, comm_ms: 1, idle_ms: 0 }] })}\n`);
      await expectClean('rank', v, () => readRun(run), fin);
      await expectClean('topology.gpus', v, () => readReportInputSync(writeFile('sim.json', JSON.stringify({ ...sim, topology: { ...sim.topology, gpus: v } }))), false);
      await expectClean('model.experts', v, () => readReportInputSync(writeFile('sim.json', JSON.stringify({ ...sim, model: { ...sim.model, experts: v } }))), false);
    }
    expect(peak).toBeLessThan(MEMORY_BOUND);
    expect(cases).toBeGreaterThan(1000); // the whole file's work, fixed by the seeds
  });
});
