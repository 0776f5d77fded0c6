/**
 * The fused wasm kernels of src/kernels/wasm_fused.ts (AdamW, global-norm statistics, RMSNorm, attention heads with RoPE, SwiGLU) against
 * the tfjs-op chains they replace, run on the cpu backend (tfjs's reference kernels), values and gradients;
 * the custom gradients also against finite differences; AdamW also bit for bit against the chain on wasm.
 * Each check first asserts that the fused kernel really ran (tf.profile), so a silent fallback cannot pass.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, it, expect } from 'vitest';
import { initBackend, type BackendName } from '../src/backend.ts';
import { ADAMW_KERNEL, CLIP_STATS_KERNEL, HEADS_KERNEL, RMS_NORM_GRAD_KERNEL, RMS_NORM_KERNEL, setWasmFusedKernels, SWIGLU_GRAD_KERNEL, SWIGLU_KERNEL } from '../src/kernels/wasm_fused.ts';
import { simdKernels } from '../src/kernels/wasm_simd.ts';
import { causalMask, causalSelfAttention, rmsNorm, ropeTables } from '../src/model/blocks.ts';
import { ffn, swiglu } from '../src/moe/experts.ts';
import { adamwUpdate, adamwUpdateOps, type AdamWHyper } from '../src/optim/adamw.ts';
import { clipOnDevice } from '../src/optim/clip.ts';
import { mergeHeadsFused, splitHeadsFused } from '../src/ops/heads.ts';
import { expectClose, finiteDiff, randomArray } from './helpers.ts';

const t = (shape: number[], seed: number, scale = 1) => tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, scale), shape);

/** fn on a backend: its outputs as plain arrays, and the names of the kernels it ran. */
async function on(backend: BackendName, fn: () => tf.Tensor[]): Promise<{ out: Float32Array[]; kernels: Set<string> }> {
  await initBackend(backend, { quiet: true });
  let out: Float32Array[] = [];
  const prof = await tf.profile(() => { out = tf.tidy(() => fn().map((x) => x.dataSync() as Float32Array)); });
  return { out, kernels: new Set(prof.kernels.map((k) => k.name)) };
}

/** fn on wasm (fused kernels `used` must run) equals fn on cpu (the tfjs chains) within atol + rtol·|cpu|. */
async function fusedMatchesCpu(fn: () => tf.Tensor[], used: string[], atol = 1e-6, rtol = 1e-5): Promise<Float32Array[]> {
  const cpu = await on('cpu', fn);
  const wasm = await on('wasm', fn);
  for (const k of used) expect(wasm.kernels.has(k), `${k} ran on wasm`).toBe(true);
  for (const k of used) expect(cpu.kernels.has(k), `${k} is wasm only`).toBe(false);
  expect(wasm.out.length).toBe(cpu.out.length);
  wasm.out.forEach((w, i) => expectClose(w, cpu.out[i], atol, rtol));
  return wasm.out;
}

/** Finite-difference check of d(Σ w ⊙ f(x))/dx on wasm, with the fused kernels. */
async function gradMatchesFiniteDiff(f: (x: tf.Tensor) => tf.Tensor, shape: number[], seed: number, used: string): Promise<void> {
  await initBackend('wasm', { quiet: true });
  const x0 = randomArray(shape.reduce((a, b) => a * b, 1), seed);
  const outShape = tf.tidy(() => f(tf.tensor(x0, shape)).shape);
  const w = tf.keep(t(outShape, seed + 1));
  const loss = (x: tf.Tensor) => tf.sum(tf.mul(f(x), w)) as tf.Scalar;
  let g: Float32Array = new Float32Array();
  const prof = await tf.profile(() => { g = tf.tidy(() => tf.grad(loss)(tf.tensor(x0, shape)).dataSync() as Float32Array); });
  expect(prof.kernels.some((k) => k.name === used), `${used} ran`).toBe(true);
  // float64 central differences of a float32 function: step 1e-2, tolerance to match
  const fd = finiteDiff((x) => tf.tidy(() => loss(tf.tensor(x, shape)).dataSync()[0]), x0.slice(), 1e-2);
  w.dispose();
  expectClose(g, fd, 3e-3, 1e-2);
}

afterAll(() => setWasmFusedKernels(true));

describe('fused AdamW (wasm)', () => {
  const hyper = (weightDecay: number): AdamWHyper => ({ lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay, bc1: 1 - 0.9 ** 3, bc2: 1 - 0.95 ** 3 });
  // sizes with a tail (n mod 4 ≠ 0) the SIMD loop leaves to JS, and one below 4 (JS only)
  const shapes = [[3], [7, 5], [16, 9], [4, 33, 8]];
  const update = (wd: number, f: typeof adamwUpdate) => () => shapes.flatMap((s, j) => {
    const r = f(t(s, 10 + j), t(s, 20 + j, 0.1), tf.abs(t(s, 30 + j, 0.01)), t(s, 40 + j, j === 0 ? 1e-4 : 2), hyper(wd));
    return [r.theta, r.m, r.v];
  });

  it('equals the tfjs chain on the cpu backend within 1e-6 relative, with and without decay', async () => {
    expect(simdKernels(((await initBackend('wasm', { quiet: true })) && tf.backend()))).not.toBeNull();
    await fusedMatchesCpu(update(0.1, adamwUpdate), [ADAMW_KERNEL], 0, 1e-6);
    await fusedMatchesCpu(update(0, adamwUpdate), [ADAMW_KERNEL], 0, 1e-6);
  });

  it('equals the tfjs chain on wasm bit for bit (same float32 operations in the same order)', async () => {
    const fused = await on('wasm', update(0.1, adamwUpdate));
    const chain = await on('wasm', update(0.1, adamwUpdateOps));
    expect(fused.kernels.has(ADAMW_KERNEL)).toBe(true);
    expect(chain.kernels.has(ADAMW_KERNEL)).toBe(false);
    fused.out.forEach((o, i) => expect(Array.from(o)).toEqual(Array.from(chain.out[i])));
  });

  it('a hand-computed step: θ=1, m=v=0, g=2, t=1, lr=0.1, λ=0.5 → m=0.2, v=0.004, θ = 1 − 0.1·(1 + 0.5)', async () => {
    const { out } = await on('wasm', () => {
      const r = adamwUpdate(tf.fill([5], 1), tf.zeros([5]), tf.zeros([5]), tf.fill([5], 2), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0.5, bc1: 0.1, bc2: 0.001 });
      return [r.theta, r.m, r.v];
    });
    expectClose(out[0], Array(5).fill(0.85), 1e-6, 0);
    expectClose(out[1], Array(5).fill(0.2), 1e-7, 0);
    expectClose(out[2], Array(5).fill(0.004), 1e-8, 0);
  });
});

describe('fused global-norm statistics (wasm)', () => {
  const clip = (gs: tf.Tensor[], maxNorm: number | null, extraSq = 0) => () => {
    const c = clipOnDevice(Object.fromEntries(gs.map((g, i) => [`p${i}`, g])), maxNorm, extraSq);
    return [c.parts, c.finite, ...Object.values(c.grads)];
  };
  const grads = () => [t([7, 5], 51, 3), t([13], 52, 0.01), t([4, 3, 9], 53)];
  it('[max |g|, Σ (g/a)², scale], finite and the clipped gradients equal the cpu backend\'s chain', async () => {
    await fusedMatchesCpu(clip(grads(), 0.5), [CLIP_STATS_KERNEL], 1e-6, 1e-5);
    await fusedMatchesCpu(clip(grads(), null, 7), [CLIP_STATS_KERNEL], 1e-6, 1e-5);
    // the largest |g| negative and inside the SIMD body: a = 9
    const neg = await fusedMatchesCpu(clip([tf.tensor1d([0.5, -9, 1, 2, 3]), t([6], 58)], 0.5), [CLIP_STATS_KERNEL], 1e-6, 1e-5);
    expect(neg[0][0]).toBe(9);
    const zeros = await fusedMatchesCpu(clip([tf.zeros([3, 2]), tf.zeros([5])], 1), [CLIP_STATS_KERNEL], 0, 0);
    expect(Array.from(zeros[0])).toEqual([0, 0, 1]);
  });

  it('gradients near 1e20 (whose squares overflow float32) still give a finite norm, as on cpu', async () => {
    const out = await fusedMatchesCpu(clip([tf.mul(t([9], 56), 1e20), t([5], 57)], 1), [CLIP_STATS_KERNEL], 0, 1e-5);
    expect(out[1][0]).toBe(1);
    expect(Number.isFinite(out[0][1])).toBe(true);
  });

  it('an Inf gradient gives a = Inf and a NaN one a NaN sum; finite = 0 and scale 1 either way, as on cpu', async () => {
    for (const bad of [Infinity, -Infinity, NaN]) {
      // the bad entry inside the SIMD body of its tensor, not in the JS tail
      const fn = () => clip([t([6], 54), tf.tensor1d([1, bad, 2, 3, 4]), t([5], 55)], 1)().slice(0, 2);
      const wasm = await on('wasm', fn);
      const cpu = await on('cpu', fn);
      expect(wasm.kernels.has(CLIP_STATS_KERNEL)).toBe(true);
      const [[a, sq, scale], [finite]] = wasm.out;
      expect(finite).toBe(0);
      expect(scale).toBe(1);
      expect(Number.isNaN(sq)).toBe(true);
      if (Number.isNaN(bad)) expect(Number.isNaN(a)).toBe(true); else expect(a).toBe(Infinity);
      expect(cpu.out[1][0]).toBe(0);
      if (!Number.isNaN(bad)) expect(cpu.out[0][0]).toBe(Infinity);
    }
  });
});

describe('fused RMSNorm (wasm)', () => {
  it('values and gradients (x and gain) equal the cpu backend\'s chain (SIMD rows: D mod 4 = 0; JS: D = 6)', async () => {
    for (const [N, D] of [[37, 24], [9, 6]]) {
      await fusedMatchesCpu(() => {
        const x = t([N, D], 1, 2), g = t([D], 2);
        const y = rmsNorm(x as tf.Tensor2D, g as tf.Tensor1D);
        const [dx, dg] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D), t([N, D], 3))))([x, g]);
        return [y, dx, dg];
      }, [RMS_NORM_KERNEL, RMS_NORM_GRAD_KERNEL], 1e-5, 1e-4);
    }
  });

  it('gradients equal finite differences (x; and the gain), JS (D = 6) and SIMD (D = 8)', async () => {
    for (const D of [6, 8]) {
      const g = tf.keep(t([D], 5));
      await gradMatchesFiniteDiff((x) => rmsNorm(x as tf.Tensor2D, g as tf.Tensor1D), [4, D], 6, RMS_NORM_GRAD_KERNEL);
      const x = tf.keep(t([4, D], 7));
      await gradMatchesFiniteDiff((gain) => rmsNorm(x as tf.Tensor2D, gain as tf.Tensor1D), [D], 8, RMS_NORM_GRAD_KERNEL);
      tf.dispose([g, x]);
    }
  });
});

// hd = 4: the rotation in JS; hd = 8: in SIMD (half a head a multiple of 4)
for (const hd of [4, 8]) describe(`fused attention heads with RoPE (wasm), head width ${hd}`, () => {
  const B = 2, L = 5, H = 3, D = H * hd;
  it('split (with and without RoPE) and merge equal the tfjs chain; a split then merge without RoPE is the identity', async () => {
    const cpu = await on('cpu', () => {
      const rope = ropeTables(L, hd);
      const x = t([B * L, D], 11);
      const s = tf.transpose(tf.reshape(x, [B, L, H, hd]), [0, 2, 1, 3]);
      const [x1, x2] = tf.split(s, 2, 3);
      const rot = tf.concat([tf.sub(tf.mul(x1, rope.cos), tf.mul(x2, rope.sin)), tf.add(tf.mul(x1, rope.sin), tf.mul(x2, rope.cos))], 3);
      return [s, rot, tf.reshape(tf.transpose(rot, [0, 2, 1, 3]), [B * L, D])];
    });
    const wasm = await on('wasm', () => {
      const rope = ropeTables(L, hd);
      const x = t([B * L, D], 11) as tf.Tensor2D;
      const rot = splitHeadsFused(x, L, H, rope);
      const plain = splitHeadsFused(x, L, H, null);
      expect(Array.from(mergeHeadsFused(plain).dataSync())).toEqual(Array.from(x.dataSync()));
      return [plain, rot, mergeHeadsFused(rot)];
    });
    expect(wasm.kernels.has(HEADS_KERNEL)).toBe(true);
    wasm.out.forEach((w, i) => expectClose(w, cpu.out[i], 1e-6, 1e-5));
  });

  it('causal self-attention with RoPE: output and gradients (x and the four weights) equal the cpu backend\'s', async () => {
    await fusedMatchesCpu(() => {
      const x = t([B * L, D], 12, 2);
      const ws = [13, 14, 15, 16].map((s) => t([D, D], s, 0.5));
      const rope = ropeTables(L, hd), mask = causalMask(L);
      const f = (a: tf.Tensor, wq: tf.Tensor, wk: tf.Tensor, wv: tf.Tensor, wo: tf.Tensor) =>
        causalSelfAttention(a as tf.Tensor2D, { wq: wq as tf.Tensor2D, wk: wk as tf.Tensor2D, wv: wv as tf.Tensor2D, wo: wo as tf.Tensor2D }, B, L, H, rope, mask);
      const dy = t([B * L, D], 17);
      return [f(x, ...ws as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]), ...tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul((f as (...z: tf.Tensor[]) => tf.Tensor)(...a), dy)))([x, ...ws])];
    }, [HEADS_KERNEL], 1e-5, 1e-4);
  });

  it('the split with RoPE: gradient equals finite differences', async () => {
    const rope = ropeTables(L, hd);
    tf.keep(rope.cos); tf.keep(rope.sin);
    await gradMatchesFiniteDiff((x) => splitHeadsFused(x as tf.Tensor2D, L, H, rope), [B * L, D], 18, HEADS_KERNEL);
    tf.dispose([rope.cos, rope.sin]);
  });
});

describe('fused SwiGLU (wasm)', () => {
  it('silu(h)·u and its gradients equal the cpu backend\'s chain; so does a SwiGLU FFN with its weight gradients', async () => {
    await fusedMatchesCpu(() => {
      const h = t([9, 7], 21, 4), u = t([9, 7], 22, 2), dy = t([9, 7], 23);
      return [swiglu(h, u), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swiglu(a, b), dy)))([h, u])];
    }, [SWIGLU_KERNEL, SWIGLU_GRAD_KERNEL], 1e-6, 1e-5);
    await fusedMatchesCpu(() => {
      const x = t([11, 8], 24), w1 = t([8, 6], 25), w2 = t([6, 8], 26), w3 = t([8, 6], 27);
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => ffn(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, d as tf.Tensor2D, 'swiglu');
      return [f(x, w1, w2, w3), ...tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => tf.sum(tf.square(f(a, b, c, d))))([x, w1, w2, w3])];
    }, [SWIGLU_KERNEL, SWIGLU_GRAD_KERNEL], 1e-5, 1e-4);
  });

  it('gradients equal finite differences (h and u)', async () => {
    const u = tf.keep(t([3, 5], 31, 2));
    await gradMatchesFiniteDiff((h) => swiglu(h, u), [3, 5], 32, SWIGLU_GRAD_KERNEL);
    const h = tf.keep(t([3, 5], 33, 3));
    await gradMatchesFiniteDiff((uu) => swiglu(h, uu), [3, 5], 34, SWIGLU_GRAD_KERNEL);
    tf.dispose([u, h]);
  });
});

describe('fallback', () => {
  it('without the fused kernels wasm runs the tfjs chains and gets the same numbers', async () => {
    const fn = () => {
      const x = t([6, 8], 41) as tf.Tensor2D, g = t([8], 42) as tf.Tensor1D;
      const r = adamwUpdate(t([13], 43), t([13], 44), tf.abs(t([13], 45)), t([13], 46), { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, bc1: 0.1, bc2: 0.01 });
      return [rmsNorm(x, g), swiglu(x, x), causalSelfAttention(x, { wq: t([8, 8], 47) as tf.Tensor2D, wk: t([8, 8], 48) as tf.Tensor2D, wv: t([8, 8], 49) as tf.Tensor2D, wo: t([8, 8], 50) as tf.Tensor2D }, 2, 3, 2, ropeTables(3, 4), causalMask(3)), r.theta, r.m, r.v];
    };
    const fused = await on('wasm', fn);
    setWasmFusedKernels(false);
    const chain = await on('wasm', fn);
    setWasmFusedKernels(true);
    for (const k of [ADAMW_KERNEL, RMS_NORM_KERNEL, HEADS_KERNEL, SWIGLU_KERNEL]) {
      expect(fused.kernels.has(k)).toBe(true);
      expect(chain.kernels.has(k)).toBe(false);
    }
    fused.out.forEach((o, i) => expectClose(o, chain.out[i], 1e-6, 1e-5));
  });
});
