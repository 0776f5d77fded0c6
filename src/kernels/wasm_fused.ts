/**
 * Fused elementwise kernels for the tfjs wasm backend, on the tensors' wasm-heap memory. Each replaces a chain of
 * small tfjs kernels (one dispatch, one heap allocation and one pass over memory per op) with one pass: the AdamW
 * update, the global-norm statistics of all gradients, RMSNorm forward and backward, split/merge of attention heads
 * with the RoPE rotation, and SwiGLU forward and backward. The arithmetic runs in the f32x4 module of wasm_simd.ts
 * (JS loops here cover tails, and engines without SIMD). Registered on import under their own kernel names, for
 * wasm only; the ops that use them (src/ops/, src/optim/) run their tfjs-op chains where the kernel does not exist.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmBackendLike } from './wasm_fast.ts';
import { simdKernels } from './wasm_simd.ts';

type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

export const ADAMW_KERNEL = 'SwitchyardAdamW';
export const RMS_NORM_KERNEL = 'SwitchyardRmsNorm';
export const RMS_NORM_GRAD_KERNEL = 'SwitchyardRmsNormGrad';
export const HEADS_KERNEL = 'SwitchyardHeads';
export const SWIGLU_KERNEL = 'SwitchyardSwiGlu';
export const SWIGLU_GRAD_KERNEL = 'SwitchyardSwiGluGrad';
export const CLIP_STATS_KERNEL = 'SwitchyardClipStats';

const fr = Math.fround;
const f32 = (wasm: WasmBackendLike, t: tf.TensorInfo) => wasm.typedArrayFromHeap(t) as Float32Array;
type WasmWithDispose = WasmBackendLike & { disposeData(dataId: object): boolean };

/** The constants of one AdamW update, as the kernel's attrs. */
export interface AdamWAttrs { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; bc1: number; bc2: number }

/**
 * AdamW on flat arrays, rounding to float32 after every operation exactly as the tfjs chain in adamwUpdate does
 * (float32 constants included), so the result is the chain's bit for bit:
 * m' = β1·m + (1−β1)·g, v' = β2·v + (1−β2)·g², θ' = θ − lr·(m'/bc1 / (√(v'/bc2) + ε) + λ·θ).
 */
export function adamwArrays(theta: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, h: AdamWAttrs, thetaOut: Float32Array, mOut: Float32Array, vOut: Float32Array): void {
  const b1 = fr(h.beta1), c1 = fr(1 - h.beta1), b2 = fr(h.beta2), c2 = fr(1 - h.beta2);
  const bc1 = fr(h.bc1), bc2 = fr(h.bc2), eps = fr(h.eps), wd = fr(h.weightDecay), lr = fr(h.lr);
  const n = theta.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = fr(fr(m[i] * b1) + fr(gi * c1));
    const vi = fr(fr(v[i] * b2) + fr(fr(gi * gi) * c2));
    let u = fr(fr(mi / bc1) / fr(fr(Math.sqrt(fr(vi / bc2))) + eps));
    if (wd > 0) u = fr(u + fr(theta[i] * wd));
    thetaOut[i] = theta[i] - fr(u * lr);
    mOut[i] = mi;
    vOut[i] = vi;
  }
}

/** AdamW: inputs θ, m, v, g (float32, one shape) → [θ', m', v']; f32x4 code where the engine has SIMD, JS for the rest. */
function adamwKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { theta, m, v, g } = inputs;
  const h = attrs as unknown as AdamWAttrs;
  const wasm = backend as WasmBackendLike;
  const outs = [wasm.makeOutput(theta.shape, 'float32'), wasm.makeOutput(theta.shape, 'float32'), wasm.makeOutput(theta.shape, 'float32')];
  // views after every allocation: a heap growth detaches earlier views
  const a = [theta, m, v, g, ...outs].map((t) => f32(wasm, t));
  const n = a[0].length;
  const simd = simdKernels(backend);
  const done = simd ? n - (n % 4) : 0;
  if (simd && done > 0) {
    simd.adamw(a[0].byteOffset, a[1].byteOffset, a[2].byteOffset, a[3].byteOffset, a[4].byteOffset, a[5].byteOffset, a[6].byteOffset, 4 * done,
      h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.bc1, h.bc2, h.eps, h.weightDecay, h.lr);
  }
  if (done < n) {
    const [th, mm, vv, gg, oth, om, ov] = a.map((x) => x.subarray(done));
    adamwArrays(th, mm, vv, gg, h, oth, om, ov);
  }
  return outs;
}

/**
 * Global-norm statistics of any number of float32 inputs: [a, Σ (g/a)²] with a = max |g| (a = 0: the sum is 0),
 * the squares in float32 as the tfjs chain in clipOnDevice forms them (so |g| ≳ 1e19 cannot overflow) and summed in
 * float64. A NaN entry makes both NaN, an Inf entry makes a = Inf and the sum NaN, as the chain reports them.
 * Two passes (max, then the sum), each in f32x4 code where the engine has SIMD.
 */
function clipStatsKernel({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const wasm = backend as WasmWithDispose;
  const aT = wasm.makeOutput([], 'float32');
  const sqT = wasm.makeOutput([], 'float32');
  const simd = simdKernels(backend);
  const scratch = wasm.makeOutput([8], 'float32'); // maxAbs's four f32 lanes, sumSquares's two f64 lanes
  const gs = Object.values(inputs).map((t) => f32(wasm, t));
  const sv = f32(wasm, scratch);
  const sd = new Float64Array(sv.buffer, sv.byteOffset, 2);
  const body = (g: Float32Array) => (simd ? g.length - (g.length % 4) : 0);
  let a = 0, nan = false;
  for (const g of gs) {
    const done = body(g);
    if (done > 0) {
      simd!.maxAbs(g.byteOffset, sv.byteOffset, 4 * done);
      for (let l = 0; l < 4; l++) { if (sv[l] > a) a = sv[l]; else if (sv[l] !== sv[l]) nan = true; }
    }
    for (let i = done; i < g.length; i++) { const ax = Math.abs(g[i]); if (ax > a) a = ax; else if (ax !== ax) nan = true; }
  }
  if (nan) a = NaN;
  let ss = a === 0 ? 0 : NaN;
  if (a > 0 && a < Infinity) {
    ss = 0;
    const af = fr(a);
    for (const g of gs) {
      const done = body(g);
      if (done > 0) { simd!.sumSquares(g.byteOffset, sv.byteOffset, 4 * done, af); ss += sd[0] + sd[1]; }
      for (let i = done; i < g.length; i++) { const q = fr(g[i] / af); ss += fr(q * q); }
    }
  }
  wasm.disposeData(scratch.dataId);
  f32(wasm, aT)[0] = a;
  f32(wasm, sqT)[0] = ss;
  return [aT, sqT];
}

/** RMSNorm forward: x [N, D], g [D] → y = x·r·g and r [N] = 1/√(mean(x²) + ε) per row (kept for the backward). */
function rmsNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, g } = inputs;
  const eps = attrs!.eps as number;
  const [N, D] = x.shape;
  const wasm = backend as WasmWithDispose;
  const yT = wasm.makeOutput([N, D], 'float32');
  const rT = wasm.makeOutput([N], 'float32');
  const simd = D % 4 === 0 ? simdKernels(backend) : null;
  const scratch = wasm.makeOutput([4], 'float32'); // two f64 lanes of a row's sum
  const xv = f32(wasm, x), gv = f32(wasm, g), y = f32(wasm, yT), r = f32(wasm, rT), sv = f32(wasm, scratch);
  const sd = new Float64Array(sv.buffer, sv.byteOffset, 2);
  for (let n = 0; n < N; n++) {
    const o = n * D;
    if (simd) {
      simd.sumSquares(xv.byteOffset + 4 * o, sv.byteOffset, 4 * D, 1);
      r[n] = 1 / Math.sqrt((sd[0] + sd[1]) / D + eps);
      simd.scaleRow(xv.byteOffset + 4 * o, gv.byteOffset, y.byteOffset + 4 * o, 4 * D, r[n]);
      continue;
    }
    let ss = 0;
    for (let d = 0; d < D; d++) ss += xv[o + d] * xv[o + d];
    const rn = 1 / Math.sqrt(ss / D + eps);
    r[n] = rn;
    for (let d = 0; d < D; d++) y[o + d] = xv[o + d] * rn * gv[d];
  }
  wasm.disposeData(scratch.dataId);
  return [yT, rT];
}

/**
 * RMSNorm backward: dy, x [N, D], g [D], r [N] → dx = r·g·dy − x·r³/D·Σ_d(dy·g·x), dg = Σ_n dy·x·r.
 * Row sums in float64; dg summed over rows in float32 (as tfjs's Sum does) on the SIMD path, float64 otherwise.
 */
function rmsNormGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const { dy, x, g, r } = inputs;
  const [N, D] = x.shape;
  const wasm = backend as WasmWithDispose;
  const dxT = wasm.makeOutput([N, D], 'float32');
  const dgT = wasm.makeOutput([D], 'float32');
  const simd = D % 4 === 0 ? simdKernels(backend) : null;
  const scratch = wasm.makeOutput([4], 'float32');
  const dyv = f32(wasm, dy), xv = f32(wasm, x), gv = f32(wasm, g), rv = f32(wasm, r), dx = f32(wasm, dxT), dgv = f32(wasm, dgT), sv = f32(wasm, scratch);
  const sd = new Float64Array(sv.buffer, sv.byteOffset, 2);
  if (simd) {
    dgv.fill(0);
    for (let n = 0; n < N; n++) {
      const ob = 4 * n * D;
      simd.dot3(dyv.byteOffset + ob, gv.byteOffset, xv.byteOffset + ob, sv.byteOffset, 4 * D);
      const rn = rv[n];
      simd.rmsRowGrad(dyv.byteOffset + ob, gv.byteOffset, xv.byteOffset + ob, dx.byteOffset + ob, dgv.byteOffset, 4 * D, rn, (rn * rn * rn * (sd[0] + sd[1])) / D);
    }
  } else {
    const dg = new Float64Array(D);
    for (let n = 0; n < N; n++) {
      const o = n * D;
      const rn = rv[n];
      let dot = 0;
      for (let d = 0; d < D; d++) {
        const dyd = dyv[o + d], xd = xv[o + d];
        dot += dyd * gv[d] * xd;
        dg[d] += dyd * xd * rn;
      }
      const k = (rn * rn * rn * dot) / D;
      for (let d = 0; d < D; d++) dx[o + d] = rn * gv[d] * dyv[o + d] - xv[o + d] * k;
    }
    dgv.set(dg);
  }
  wasm.disposeData(scratch.dataId);
  return [dxT, dgT];
}

/**
 * Heads with the RoPE rotation. direction 'split': x [B·L, H·hd] → [B, H, L, hd]; 'merge': [B, H, L, hd] → [B·L, H·hd].
 * With cos, sin [L, hd/2] each head vector is rotated on the way (rotate-half): [x1, x2] → [x1·c − x2·s', x1·s' + x2·c]
 * with s' = sign·s, so sign −1 is the inverse rotation (the gradient of sign +1).
 */
function headsKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, cos, sin } = inputs;
  const split = attrs!.direction === 'split';
  const L = attrs!.seqLen as number, H = attrs!.heads as number, sign = (attrs!.sign as number) ?? 1;
  const wasm = backend as WasmBackendLike;
  const size = x.shape.reduce((a, b) => a * b, 1);
  const hd = split ? x.shape[1] / H : x.shape[3];
  const D = H * hd;
  const B = size / (L * D);
  const outT = wasm.makeOutput(split ? [B, H, L, hd] : [B * L, D], 'float32');
  if (size === 0) return outT;
  const xv = f32(wasm, x), out = f32(wasm, outT);
  const rope = cos !== undefined;
  const cv = rope ? f32(wasm, cos) : null, sv = rope ? f32(wasm, sin) : null;
  const half = hd / 2;
  const simd = rope && half % 4 === 0 ? simdKernels(backend) : null;
  const xb = xv.byteOffset, ob = out.byteOffset, cb = cv ? cv.byteOffset : 0, sb = sv ? sv.byteOffset : 0;
  const heap = new Float32Array(xv.buffer); // plain head copies as copyWithin on the whole heap: no view per copy
  const x4 = xb / 4, o4 = ob / 4;
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      const row = (b * L + l) * D;
      for (let h = 0; h < H; h++) {
        const ho = ((b * H + h) * L + l) * hd;
        const si = split ? row + h * hd : ho;
        const di = split ? ho : row + h * hd;
        if (!rope) { heap.copyWithin(o4 + di, x4 + si, x4 + si + hd); continue; }
        const t = l * half;
        if (simd) { simd.ropeRow(xb + 4 * si, xb + 4 * (si + half), cb + 4 * t, sb + 4 * t, ob + 4 * di, ob + 4 * (di + half), 4 * half, sign); continue; }
        for (let j = 0; j < half; j++) {
          const x1 = xv[si + j], x2 = xv[si + j + half];
          const c = cv![t + j], s = sign * sv![t + j];
          out[di + j] = x1 * c - x2 * s;
          out[di + j + half] = x1 * s + x2 * c;
        }
      }
    }
  }
  return outT;
}

/** SwiGLU forward: h, s = σ(h), u → (h·s)·u (the tfjs chain's order). */
function swigluKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { h, s, u } = inputs;
  const wasm = backend as WasmBackendLike;
  const yT = wasm.makeOutput(h.shape, 'float32');
  const hv = f32(wasm, h), sv = f32(wasm, s), uv = f32(wasm, u), y = f32(wasm, yT);
  const simd = simdKernels(backend);
  const done = simd ? hv.length - (hv.length % 4) : 0;
  if (simd && done > 0) simd.swiglu(hv.byteOffset, sv.byteOffset, uv.byteOffset, y.byteOffset, 4 * done);
  for (let i = done; i < hv.length; i++) y[i] = fr(hv[i] * sv[i]) * uv[i];
  return yT;
}

/** SwiGLU backward: dy, h, s = σ(h), u → dh = (dy·u)·s + ((dy·u)·h)·(s·(1 − s)), du = dy·(h·s). */
function swigluGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const { dy, h, s, u } = inputs;
  const wasm = backend as WasmBackendLike;
  const dhT = wasm.makeOutput(h.shape, 'float32');
  const duT = wasm.makeOutput(h.shape, 'float32');
  const dyv = f32(wasm, dy), hv = f32(wasm, h), sv = f32(wasm, s), uv = f32(wasm, u), dh = f32(wasm, dhT), du = f32(wasm, duT);
  const simd = simdKernels(backend);
  const done = simd ? hv.length - (hv.length % 4) : 0;
  if (simd && done > 0) simd.swigluGrad(dyv.byteOffset, hv.byteOffset, sv.byteOffset, uv.byteOffset, dh.byteOffset, du.byteOffset, 4 * done);
  for (let i = done; i < hv.length; i++) {
    const a = hv[i], si = sv[i], d = dyv[i], du1 = fr(d * uv[i]);
    du[i] = d * fr(a * si);
    dh[i] = fr(du1 * si) + fr(fr(du1 * a) * fr(si * fr(1 - si)));
  }
  return [dhT, duT];
}

const KERNELS: [string, (a: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]][] = [
  [ADAMW_KERNEL, adamwKernel], [RMS_NORM_KERNEL, rmsNormKernel], [RMS_NORM_GRAD_KERNEL, rmsNormGradKernel],
  [HEADS_KERNEL, headsKernel], [SWIGLU_KERNEL, swigluKernel], [SWIGLU_GRAD_KERNEL, swigluGradKernel],
  [CLIP_STATS_KERNEL, clipStatsKernel],
];

/** Registers (on, as at import) or removes the fused wasm kernels; removed, every caller runs its tfjs-op chain. */
export function setWasmFusedKernels(on: boolean): void {
  for (const [kernelName, kernelFunc] of KERNELS) {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    if (on) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}

/** True when the active backend is wasm and the named fused kernel is registered for it. */
export function fusedKernelActive(kernelName: string): boolean {
  return tf.getBackend() === 'wasm' && tf.getKernel(kernelName, 'wasm') !== undefined;
}

setWasmFusedKernels(true);
