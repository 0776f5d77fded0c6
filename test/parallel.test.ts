import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planTokenChoice, type DispatchPlan } from '../src/moe/plan.ts';
import { createExperts, runExperts, type Activation, type ExpertWeights } from '../src/moe/experts.ts';
import { MoELayer, type MoEConfig } from '../src/moe/layer.ts';
import { Rng } from '../src/rng.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { clipByGlobalNorm } from '../src/optim/clip.ts';
import { planExchange } from '../src/parallel/exchange.ts';
import { ExpertParallel } from '../src/parallel/expert_parallel.ts';
import { decodeMeta, encodeMeta, chunkOffsets, metaWords } from '../src/parallel/meta.ts';
import { checkPlacement, defaultPlacement, expertToRank, placementFromPhy2Log, rankSlots, type Placement } from '../src/parallel/placement.ts';
import { describeBackends, expectClose, randomArray } from './helpers.ts';
import { initBackend } from '../src/backend.ts';

/** Token t picks experts choices[t] (k each). */
function planOf(choices: number[][], E: number): DispatchPlan {
  return planTokenChoice(Int32Array.from(choices.flat()), null, choices.length, choices[0].length, E);
}

/** Deterministic distinct top-k choices per token. */
function randomChoices(T: number, k: number, E: number, seed: number): number[][] {
  const u = randomArray(T * E, seed, 1);
  return Array.from({ length: T }, (_, t) => Array.from({ length: E }, (_, e) => e).sort((a, b) => u[t * E + a] - u[t * E + b]).slice(0, k));
}

describe('exchange planning (plain JS)', () => {
  beforeAll(async () => { await initBackend('cpu', { quiet: true }); }); // the constructor check below makes tensors
  // T = 4 tokens on 4 ranks (home(t) = t), nodes {0,1} and {2,3}, expert e on rank e, D = 2 → 8 bytes a row.
  const choices = [[2, 3], [0, 2], [2, 3], [0, 1]];
  const plan = planOf(choices, 4);
  const slots = rankSlots(defaultPlacement(4, 4), 4);

  it('counts bytes by hand: flat sends per assignment, hierarchical once per (token, node)', () => {
    const flat = planExchange(plan, slots, { mode: 'flat', nodes: 2, chunks: 1 }, 8).traffic;
    const hier = planExchange(plan, slots, { mode: 'hierarchical', nodes: 2, chunks: 1 }, 8).traffic;
    // flat: t0 →2,3 inter ×2; t1 →0 intra, →2 inter; t2 →2 self, →3 intra; t3 →0,1 inter ×2.
    expect(flat.dispatch).toEqual({ intra: 2 * 8, inter: 5 * 8 });
    // hierarchical: t0 → gateway 2 (inter), 2→3; t1 → 0 direct, → gateway 3 (inter), 3→2; t2 → 3; t3 → gateway 1 (inter), 1→0.
    expect(hier.dispatch).toEqual({ intra: 5 * 8, inter: 3 * 8 });
    expect(Array.from(flat.dispatchSent)).toEqual([16, 16, 8, 16]);
    expect(Array.from(hier.dispatchSent)).toEqual([8, 24, 16, 16]); // gateways 1, 2, 3 also forward one token each
    // ys home, per row, same in both modes: inter rows t0@2, t0@3, t1@2, t3@0, t3@1; intra t1@0, t2@3.
    for (const t of [flat, hier]) expect(t.perRow).toEqual({ intra: 2 * 8, inter: 5 * 8 });
    // dxs home: flat per row; hierarchical the dispatch's mirror, one reduced row per (token, node) across:
    // t0 3→2, 2→0 (inter); t1 0→1, 2→3, 3→1 (inter); t2 3→2; t3 0→1, 1→3 (inter).
    expect(flat.reduce).toEqual(flat.perRow);
    expect(Array.from(flat.reduceSent)).toEqual(Array.from(flat.rowsSent));
    expect(hier.reduce).toEqual({ intra: 5 * 8, inter: 3 * 8 });
    expect(Array.from(hier.reduceSent)).toEqual([16, 8, 16, 24]);
    expect(Array.from(hier.reduceSentInter)).toEqual([0, 8, 8, 8]);
    expect(Array.from(hier.rowsSentInter)).toEqual([8, 8, 16, 8]); // what flat sends across per rank: saved [8, 0, 8, 0]
    expect(Array.from(hier.flatDispatchSentInter)).toEqual([16, 8, 0, 16]);
    expect(Array.from(hier.dispatchSentInter)).toEqual([8, 8, 0, 8]); // saved [8, 0, 0, 8]
  });

  it('every rank reconstructs its rows from stage-1 copies and stage-2 forwards (via the meta encoding)', () => {
    const T = 37, E = 8, N = 4, D = 3;
    const p = planOf(randomChoices(T, 3, E, 11), E);
    const xs = new Float32Array(p.tokenOfRow.length * D);
    p.tokenOfRow.forEach((t, n) => { for (let d = 0; d < D; d++) xs[n * D + d] = t * 10 + d; });
    const placement: Placement = { expertToRanks: [[0], [0, 3], [1], [1], [2], [2, 0], [3], [3]] };
    for (const mode of ['flat', 'hierarchical'] as const) for (const chunks of [1, 3]) {
      const sl = rankSlots(placement, N);
      const ex = planExchange(p, sl, { mode, nodes: 2, chunks }, 4 * D);
      const off = chunkOffsets(ex.chunks, N);
      const peers = (r: number) => (mode === 'flat' ? [] : [r ^ 1]);
      const layouts = Array.from({ length: N }, (_, r) => {
        const meta = new Int32Array(metaWords(ex.chunks, r, peers(r)));
        encodeMeta(meta, ex.chunks, r, off, peers(r));
        return decodeMeta(meta);
      });
      const inbox = off.inboxRows.map((n) => new Float32Array(n * D).fill(NaN));
      ex.chunks.forEach((per, c) => per.forEach((ch, r) => ch.stage1.forEach((row, i) => inbox[r].set(xs.subarray(row * D, row * D + D), (off.inbox[c][r] + i) * D))));
      const seen = new Array(p.tokenOfRow.length).fill(0);
      for (let c = 0; c < chunks; c++) {
        for (let r = 0; r < N; r++) for (const f of layouts[r][c].forwards) f.src.forEach((s, i) => {
          inbox[f.peer].set(inbox[r].subarray((layouts[r][c].inboxStart + s) * D, (layouts[r][c].inboxStart + s + 1) * D), (f.peerInboxStart + f.dst[i]) * D);
        });
        for (let r = 0; r < N; r++) {
          const L = layouts[r][c];
          expect(Array.from(L.slotCounts).reduce((a, b) => a + b, 0)).toBe(L.nRows);
          ex.chunks[c][r].rows.forEach((row, i) => {
            seen[row]++;
            const at = (L.inboxStart + L.rowSrc[i]) * D;
            expect(Array.from(inbox[r].subarray(at, at + D))).toEqual(Array.from(xs.subarray(row * D, row * D + D)));
          });
        }
      }
      expect(seen.every((s) => s === 1)).toBe(true); // each row computed exactly once, by one replica
    }
  });

  it('placement: defaults, rank map, planner rows, and errors naming the bad value', () => {
    expect(defaultPlacement(6, 3).expertToRanks).toEqual([[0], [0], [1], [1], [2], [2]]);
    expect(expertToRank({ expertToRanks: [[1, 0], [0], [1]] })).toEqual([1, 0, 1]);
    expect(placementFromPhy2Log([0, 1, 2, 0], 3, 2).expertToRanks).toEqual([[0, 1], [0], [1]]);
    expect(() => defaultPlacement(5, 2)).toThrow(/5 is not divisible by epSize = 2/);
    expect(() => checkPlacement({ expertToRanks: [[0], [2]] }, 2, 2)).toThrow(/expert 1 is on rank 2/);
    expect(() => checkPlacement({ expertToRanks: [[0], [0]] }, 2, 2)).toThrow(/rank 1 holds no expert/);
    expect(() => new ExpertParallel({ epSize: 2, nodes: 3, layerWeights: createExperts(new Rng(1), 2, 2, 2, 'relu'), activation: 'relu' })).toThrow(/nodes must be a positive divisor of epSize = 2, got 3/);
  });
});

/** ys, dxs (for output gradient dy) and weight gradients of the single-thread path. */
function reference(xs: tf.Tensor2D, w: ExpertWeights, plan: DispatchPlan, act: Activation, dy: tf.Tensor2D) {
  const f = (x: tf.Tensor) => tf.sum(tf.mul(runExperts(x as tf.Tensor2D, w, plan.tokensPerExpert, act), dy)) as tf.Scalar;
  const ys = tf.tidy(() => runExperts(xs, w, plan.tokensPerExpert, act).dataSync().slice());
  const dxs = tf.tidy(() => tf.grad(f)(xs).dataSync().slice());
  const vars = [w.w1, w.w2, ...(w.w3 ? [w.w3] : [])];
  const { value, grads } = tf.variableGrads(() => f(xs), vars);
  const g = vars.map((v) => grads[v.name].dataSync().slice());
  value.dispose();
  tf.dispose(grads);
  return { ys, dxs, g };
}

/** Checks ep against the single-thread path on one routing, in each comm setting. */
async function checkAgainstSingleThread(ep: ExpertParallel, w: ExpertWeights, act: Activation, plan: DispatchPlan, T: number, settings: { mode: 'flat' | 'hierarchical'; nodes: number; chunks: number }[], accumulate = false) {
  const D = w.w1.shape[1]!;
  const x = tf.tensor2d(randomArray(T * D, 21, 1), [T, D]);
  const xs = tf.gather(x, tf.tensor1d(plan.tokenOfRow, 'int32')) as tf.Tensor2D;
  const dy = tf.tensor2d(randomArray(xs.size, 22, 1), xs.shape);
  const ref = reference(xs, w, plan, act, dy);
  for (const s of settings) {
    ep.setComm(s);
    ep.scaleGrads(0); // start from zero gradients
    ep.takeTimings(); ep.takeTraffic(); // and from no bytes (the previous setting's accumulation check moved some)
    // Each row is computed by the same kernel on the same inputs wherever it runs: ys and dxs are bit-identical in
    // every setting. Expert gradients are too when each expert's rows arrive in one piece (ep 2, one chunk, no
    // replicas); chunks and replicas add partial sums in another order (measured ≤ 4e-8 here).
    const ys = tf.tidy(() => ep.run(xs, plan).dataSync().slice());
    expectClose(ys, ref.ys, 0, 0);
    const dxs = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(ep.run(v as tf.Tensor2D, plan), dy)))(xs).dataSync().slice());
    if (s.mode === 'flat') expectClose(dxs, ref.dxs, 0, 0);
    else {
      // hierarchical reduces dxs per token on the way home: each token's sum lands in its first row, zeros elsewhere
      const byToken = (a: ArrayLike<number>) => { const o = new Float64Array(T * D); plan.tokenOfRow.forEach((t, n) => { for (let d = 0; d < D; d++) o[t * D + d] += a[n * D + d]; }); return o; };
      expectClose(byToken(dxs), byToken(ref.dxs), 1e-6, 1e-5);
      const first = new Set<number>();
      plan.tokenOfRow.forEach((t, n) => { if (!first.has(t)) { first.add(t); return; } for (let d = 0; d < D; d++) expect(dxs[n * D + d]).toBe(0); });
    }
    const g = await ep.getGrads();
    const [atol, rtol] = ep.epSize === 2 && s.chunks === 1 ? [0, 0] : [1e-5, 1e-4];
    expectClose(g.w1, ref.g[0], atol, rtol);
    expectClose(g.w2, ref.g[1], atol, rtol);
    if (w.w3) expectClose(g.w3!, ref.g[2], atol, rtol);
    const normSq = ref.g.reduce((s2, a) => s2 + Array.from(a).reduce((u, v) => u + v * v, 0), 0);
    expect(ep.globalGradNormSq()).toBeCloseTo(normSq, 4);
    const timings = ep.takeTimings();
    const traffic = ep.takeTraffic();
    expect(timings.map((t) => t.rank)).toEqual(Array.from({ length: ep.epSize }, (_, r) => r));
    expect(timings.every((t) => t.compute_ms > 0 && t.comm_efficiency! > 0 && t.comm_efficiency! <= 1)).toBe(true);
    // Every byte moved was sent by some rank: Σ_r bytes_sent = intra + inter over all phases.
    expect(timings.reduce((a, t) => a + t.bytes_sent!, 0)).toBeCloseTo(traffic.total.intra + traffic.total.inter, 6);
    // the inter-node bytes dedup saved, summed over ranks, are what a flat exchange of the same call sends more
    const flatEx = planExchange(plan, rankSlots(ep.placement, ep.epSize), { ...s, mode: 'flat' }, 4 * D).traffic;
    const flatInter = 2 * (flatEx.dispatch.inter + flatEx.perRow.inter) + flatEx.perRow.inter + flatEx.reduce.inter; // 2 forwards, 1 backward
    expect(timings.reduce((a, t) => a + t.bytes_inter_saved!, 0)).toBeCloseTo(flatInter - traffic.total.inter, 6);
    if (s.mode === 'flat') expect(timings.every((t) => t.bytes_inter_saved === 0)).toBe(true);
    if (accumulate) { // a second backward adds to the gradients (gradient accumulation), replicas included
      tf.tidy(() => { tf.grad((v: tf.Tensor) => tf.sum(tf.mul(ep.run(v as tf.Tensor2D, plan), dy)))(xs); });
      const g2 = await ep.getGrads();
      expectClose(g2.w1, ref.g[0].map((v) => 2 * v), 1e-5, 1e-4);
      expectClose(g2.w2, ref.g[1].map((v) => 2 * v), 1e-5, 1e-4);
    }
  }
  tf.dispose([x, xs, dy]);
}

/** A tiny model: h = x·W_in, then h ← h + MoE_l(h) per layer; loss = mean((h − target)²) + 0.01·Σ switch. */
function makeModel(cfg: MoEConfig, layers: number, din: number, seed: number) {
  const rng = new Rng(seed);
  const win = tf.variable(tf.tensor2d(randomArray(din * cfg.dim, seed + 1, 0.5), [din, cfg.dim]));
  return { win, layers: Array.from({ length: layers }, () => new MoELayer(cfg, rng)) };
}
type Model = ReturnType<typeof makeModel>;

function lossOf(m: Model, x0: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
  let h = tf.matMul(x0, m.win) as tf.Tensor2D; // [T, D]
  let aux: tf.Scalar = tf.scalar(0);
  for (const layer of m.layers) {
    const out = layer.forward(h, { training: true });
    h = tf.add(h, out.y) as tf.Tensor2D;
    aux = tf.add(aux, out.aux.switch!) as tf.Scalar;
  }
  return tf.add(tf.mean(tf.square(tf.sub(h, target))), tf.mul(0.01, aux)) as tf.Scalar;
}

const HYPER = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
const LR = 0.02, MAX_NORM = 0.05, STEPS = 20;

/** 20 steps with global-norm clipping; ep = null trains everything on the main thread. */
function train(m: Model, ep: ExpertParallel | null, x0: tf.Tensor2D, target: tf.Tensor2D): { losses: number[]; adam: AdamW } {
  const mainVars = ep ? [m.win, ...m.layers.map((l) => l.gate)] : [m.win, ...m.layers.flatMap((l) => [l.gate, l.experts.w1, l.experts.w2, ...(l.experts.w3 ? [l.experts.w3] : [])])];
  if (ep) m.layers.forEach((l, i) => { l.executor = ep.executor(i); });
  const adam = new AdamW(mainVars, HYPER);
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    const { value, grads } = tf.variableGrads(() => lossOf(m, x0, target), mainVars);
    losses.push(value.dataSync()[0]);
    if (!ep) {
      const clip = clipByGlobalNorm(grads, MAX_NORM);
      adam.step(clip.grads, LR);
      tf.dispose(clip.grads);
    } else {
      // Global norm over main-thread and expert gradients, then one clipping factor for both.
      const mainSq = tf.tidy(() => tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))).dataSync()[0]);
      const norm = Math.sqrt(mainSq + ep.globalGradNormSq());
      const scale = Math.min(1, MAX_NORM / (norm + 1e-6));
      const scaled = tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, scale)])));
      ep.scaleGrads(scale);
      adam.step(scaled, LR);
      ep.step(LR);
      tf.dispose(scaled);
    }
    value.dispose();
    tf.dispose(grads);
  }
  return { losses, adam };
}

/** Resets ep to model m's initial expert weights and a fresh optimizer. */
async function resetGroup(ep: ExpertParallel, m: Model): Promise<void> {
  for (let l = 0; l < m.layers.length; l++) {
    const w = m.layers[l].experts;
    await ep.setWeights({ w1: w.w1.dataSync() as Float32Array, w2: w.w2.dataSync() as Float32Array, w3: w.w3 ? (w.w3.dataSync() as Float32Array) : null }, l);
  }
  const zeros = (w: ExpertWeights) => ({ w1: new Float32Array(w.w1.size), w2: new Float32Array(w.w2.size), w3: w.w3 ? new Float32Array(w.w3.size) : null });
  await ep.setOptimizerState({ step: 0, layers: m.layers.map((l) => ({ m: zeros(l.experts), v: zeros(l.experts) })) });
  ep.scaleGrads(0);
}

/** Trains ep and the single-thread path from the same init; losses, weights and expert moments must agree. */
async function checkTraining(ep: ExpertParallel, cfg: MoEConfig, layers: number, seed: number) {
  const din = 5, T = 16;
  const x0 = tf.tensor2d(randomArray(T * din, seed + 7, 1), [T, din]);
  const target = tf.tensor2d(randomArray(T * cfg.dim, seed + 8, 0.5), [T, cfg.dim]);
  const a = makeModel(cfg, layers, din, seed), b = makeModel(cfg, layers, din, seed);
  await resetGroup(ep, b);
  const ref = train(a, null, x0, target);
  const got = train(b, ep, x0, target);
  expectClose(got.losses, ref.losses, 1e-6, 1e-4);
  expect(ref.losses[STEPS - 1]).toBeLessThan(ref.losses[0]); // it trained
  expectClose(b.win.dataSync(), a.win.dataSync(), 1e-6, 1e-4);
  const opt = await ep.getOptimizerState();
  const refState = await ref.adam.getState();
  expect(opt.step).toBe(STEPS);
  for (let l = 0; l < layers; l++) {
    expectClose(b.layers[l].gate.dataSync(), a.layers[l].gate.dataSync(), 1e-6, 1e-4);
    const w = await ep.getWeights(l);
    expectClose(w.w1, a.layers[l].experts.w1.dataSync(), 1e-6, 1e-4);
    expectClose(w.w2, a.layers[l].experts.w2.dataSync(), 1e-6, 1e-4);
    if (w.w3) expectClose(w.w3, a.layers[l].experts.w3!.dataSync(), 1e-6, 1e-4);
    expectClose(opt.layers[l].m.w1, refState.m[a.layers[l].experts.w1.name], 1e-7, 1e-3);
    expectClose(opt.layers[l].v.w2, refState.v[a.layers[l].experts.w2.name], 1e-9, 1e-3);
  }
  for (const m of [a, b]) { m.win.dispose(); m.layers.forEach((l) => l.dispose()); }
  ref.adam.dispose();
  got.adam.dispose();
  tf.dispose([x0, target]);
}

const CFG2: MoEConfig = {
  dim: 8, hidden: 12, numExperts: 4, topK: 2, activation: 'swiglu', router: { type: 'topk' },
  capacityFactor: 1.5, capacityPolicy: 'drop-position', sharedExperts: 0, auxLosses: ['switch'],
};
// ep 4 on 2 nodes, 6 experts, experts 1 and 3 replicated across nodes.
const CFG4: MoEConfig = { ...CFG2, numExperts: 6, activation: 'gelu', capacityPolicy: 'dropless', capacityFactor: null };
const PLACE4: Placement = { expertToRanks: [[0], [0, 2], [1], [1, 3], [2], [3]] };

describeBackends('ExpertParallel', (backend) => {
  let ep2: ExpertParallel, ep4: ExpertParallel;
  let m2: Model, m4: Model;
  beforeAll(async () => {
    m2 = makeModel(CFG2, 2, 5, 100);
    m4 = makeModel(CFG4, 1, 5, 200);
    ep2 = new ExpertParallel({ epSize: 2, nodes: 2, layerWeights: m2.layers.map((l) => l.experts), activation: 'swiglu', adamw: HYPER, backend: backend as 'wasm' | 'cpu', timeoutMs: 20_000 });
    ep4 = new ExpertParallel({ epSize: 4, nodes: 2, placement: PLACE4, layerWeights: m4.layers[0].experts, activation: 'gelu', adamw: HYPER, backend: backend as 'wasm' | 'cpu', timeoutMs: 20_000 });
    await Promise.all([ep2.ready(), ep4.ready()]);
  });
  afterAll(async () => {
    await Promise.all([ep2?.dispose(), ep4?.dispose()]);
    expect(ep2.aliveWorkers() + ep4.aliveWorkers()).toBe(0);
    for (const m of [m2, m4]) { m.win.dispose(); m.layers.forEach((l) => l.dispose()); }
  });

  it('ep 2 (1 rank per node): ys, dxs and expert gradients equal runExperts, flat and hierarchical, chunked or not', async () => {
    const plan = planOf(randomChoices(20, 2, 4, 3), 4);
    await checkAgainstSingleThread(ep2, m2.layers[0].experts, 'swiglu', plan, 20, [
      { mode: 'flat', nodes: 2, chunks: 1 }, { mode: 'hierarchical', nodes: 2, chunks: 1 }, { mode: 'hierarchical', nodes: 1, chunks: 3 },
    ]);
  });

  it('ep 4 on 2 nodes with replicated experts: same equalities, gradients accumulate; replicas stay identical after a step', async () => {
    const plan = planOf(randomChoices(30, 3, 6, 4), 6);
    const settings = [{ mode: 'flat', nodes: 2, chunks: 2 }, { mode: 'hierarchical', nodes: 2, chunks: 1 }, { mode: 'hierarchical', nodes: 2, chunks: 3 }] as const;
    await checkAgainstSingleThread(ep4, m4.layers[0].experts, 'gelu', plan, 30, [...settings], true);
    ep4.step(0.05);
    // After the update each replica must still compute what the primary's weights compute.
    const w = await ep4.getWeights();
    const D = CFG4.dim, H = CFG4.hidden, E = CFG4.numExperts;
    const stepped = { w1: tf.variable(tf.tensor3d(w.w1, [E, D, H])), w2: tf.variable(tf.tensor3d(w.w2, [E, H, D])), w3: null };
    await checkAgainstSingleThread(ep4, stepped, 'gelu', plan, 30, [settings[1]]);
    stepped.w1.dispose(); stepped.w2.dispose();
  });

  it('20 training steps at ep 2 (flat, then hierarchical chunked) match ep 1: losses, weights, AdamW moments', async () => {
    ep2.setComm({ mode: 'flat', nodes: 2, chunks: 1 });
    await checkTraining(ep2, CFG2, 2, 100);
    ep2.setComm({ mode: 'hierarchical', nodes: 2, chunks: 2 });
    await checkTraining(ep2, CFG2, 2, 100);
  });

  it('20 training steps at ep 4 / 2 nodes, hierarchical, with replicas, match ep 1', async () => {
    ep4.setComm({ mode: 'hierarchical', nodes: 2, chunks: 1 });
    await checkTraining(ep4, CFG4, 1, 200);
    expect(ep4.expertToRank()).toEqual([0, 0, 1, 1, 2, 3]);
  });
});

describe('ExpertParallel failures', () => {
  let w: ExpertWeights, xs: tf.Tensor2D;
  const plan = planOf([[0, 1], [1, 0], [0, 1]], 2);
  beforeAll(async () => {
    await initBackend('cpu', { quiet: true });
    w = createExperts(new Rng(1), 2, 4, 4, 'relu');
    xs = tf.tensor2d(randomArray(6 * 4, 5, 1), [6, 4]);
  });
  afterAll(() => { tf.dispose([w.w1, w.w2, xs]); });

  for (const [kind, on] of [['throw', 'fwd'], ['exit', 'bwd'], ['hang', 'fwd']] as const) {
    // No wall-clock assertion: the message says which detector fired (a hang only by the 1500 ms deadline, a throw
    // or an exit by the worker's own report); the test timeout catches a call that never returns.
    it(`a rank that ${kind === 'hang' ? 'hangs' : kind === 'exit' ? 'exits' : 'throws'} in ${on} makes the call throw naming it; dispose ends every thread`, async () => {
      const ep = new ExpertParallel({ epSize: 2, layerWeights: w, activation: 'relu', timeoutMs: 1500, backend: 'cpu' });
      await ep.ready();
      ep.injectFault(1, kind, on);
      const before = tf.memory().numTensors;
      const call = () => (on === 'fwd' ? tf.tidy(() => ep.run(xs, plan)) : tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(ep.run(v as tf.Tensor2D, plan)))(xs)));
      expect(call).toThrow(kind === 'hang' ? /rank 1 did not answer within 1500 ms/ : kind === 'exit' ? /rank 1 died/ : /rank 1 failed: injected fault in fwd/);
      // Nothing of ours leaks; tfjs's tape itself keeps one tensor when any gradient function throws.
      expect(tf.memory().numTensors - before).toBeLessThanOrEqual(on === 'bwd' ? 1 : 0);
      expect(() => ep.run(xs, plan)).toThrow(/unusable after an earlier failure/);
      await ep.dispose();
      expect(ep.aliveWorkers()).toBe(0);
    }, 30_000);
  }
});
