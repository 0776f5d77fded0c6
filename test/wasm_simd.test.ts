/**
 * The SIMD kernels module of src/kernels/wasm_simd.ts: the committed bytes are wasm_simd.wat assembled by wabt now
 * (so the source and the bytes cannot drift), they validate, and each function computes its formula in float32,
 * operation by operation in the documented order, bit for bit against a Math.fround reference on a memory of its
 * own. test/fused_kernels.test.ts checks the kernels built on them against the tfjs chains.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assembleWat, bytesModuleText, SIMD_BYTES_TS, SIMD_WAT } from '../src/kernels/build_simd.ts';
import { simdModuleBytes, type SimdKernels } from '../src/kernels/wasm_simd.ts';
import { randomArray } from './helpers.ts';

const NAMES = ['adamw', 'swiglu', 'swigluGrad', 'maxAbs', 'sumSquares', 'dot3', 'scaleRow', 'rmsRowGrad', 'ropeRow'];
const f = Math.fround;
const sqrt = (x: number) => f(Math.sqrt(x));

describe('SIMD kernels module', () => {
  it('the committed bytes are wasm_simd.wat assembled by wabt now', async () => {
    const fresh = await assembleWat(fs.readFileSync(SIMD_WAT, 'utf8'));
    expect(Array.from(simdModuleBytes())).toEqual(Array.from(fresh));
    expect(fs.readFileSync(SIMD_BYTES_TS, 'utf8')).toBe(bytesModuleText(fresh));
  });

  it('the drift check can fail: one changed operation changes the bytes; an ill-typed module is refused', async () => {
    const wat = fs.readFileSync(SIMD_WAT, 'utf8');
    const fresh = await assembleWat(wat);
    const changed = await assembleWat(wat.replace('(f32x4.sub', '(f32x4.add'));
    expect(Array.from(changed)).not.toEqual(Array.from(fresh));
    await expect(assembleWat(wat.replace('(f32x4.sqrt', '(f64x2.sqrt (i32.const 0)'))).rejects.toThrow();
  });

  it('validates, imports env.memory and exports the nine functions', () => {
    const bytes = simdModuleBytes();
    expect(WebAssembly.validate(bytes)).toBe(true);
    const mod = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    expect(WebAssembly.Module.exports(mod).map((e) => `${e.name}:${e.kind}`)).toEqual(NAMES.map((n) => `${n}:function`));
  });

  it('computes each formula in float32, in its order, bit for bit', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const k = new WebAssembly.Instance(new WebAssembly.Module(simdModuleBytes()), { env: { memory } }).exports as unknown as SimdKernels;
    const n = 8, nb = 4 * n, STRIDE = 256;
    const heap = new Float32Array(memory.buffer);
    /** Array number `i` in the memory: its byte pointer and a view. */
    const arr = (i: number, values?: ArrayLike<number>) => {
      const view = heap.subarray((i * STRIDE) / 4, (i * STRIDE) / 4 + n);
      if (values) view.set(values);
      return { p: i * STRIDE, view };
    };
    const r = (seed: number, scale = 1) => randomArray(n, seed, scale);
    const map = (fn: (i: number) => number) => Array.from({ length: n }, (_, i) => fn(i));

    // AdamW: m' = m·β1 + g·c1, v' = v·β2 + (g·g)·c2, θ' = θ − ((m'/bc1)/(√(v'/bc2) + ε) + θ·λ)·lr
    const th = arr(0, r(1)), m = arr(1, r(2, 0.1)), v = arr(2, r(3, 0.01).map(Math.abs)), g = arr(3, r(4));
    const oth = arr(4), om = arr(5), ov = arr(6);
    const [b1, c1, b2, c2, bc1, bc2, eps, wd, lr] = [0.9, 0.1, 0.95, 0.05, 0.271, 0.142625, 1e-8, 0.1, 3e-3].map(f);
    k.adamw(th.p, m.p, v.p, g.p, oth.p, om.p, ov.p, nb, b1, c1, b2, c2, bc1, bc2, eps, wd, lr);
    const m2 = map((i) => f(f(m.view[i] * b1) + f(g.view[i] * c1)));
    const v2 = map((i) => f(f(v.view[i] * b2) + f(f(g.view[i] * g.view[i]) * c2)));
    const th2 = map((i) => f(th.view[i] - f(f(f(f(m2[i] / bc1) / f(sqrt(f(v2[i] / bc2)) + eps)) + f(th.view[i] * wd)) * lr)));
    expect(Array.from(om.view)).toEqual(m2);
    expect(Array.from(ov.view)).toEqual(v2);
    expect(Array.from(oth.view)).toEqual(th2);

    // SwiGLU: y = (h·s)·u; du = dy·(h·s), dh = (dy·u)·s + ((dy·u)·h)·(s·(1 − s))
    const h = arr(0, r(5, 3)), s = arr(1, map((i) => 1 / (1 + Math.exp(-h.view[i])))), u = arr(2, r(6)), dy = arr(3, r(7));
    const y = arr(4), dh = arr(5), du = arr(6);
    k.swiglu(h.p, s.p, u.p, y.p, nb);
    expect(Array.from(y.view)).toEqual(map((i) => f(f(h.view[i] * s.view[i]) * u.view[i])));
    k.swigluGrad(dy.p, h.p, s.p, u.p, dh.p, du.p, nb);
    expect(Array.from(du.view)).toEqual(map((i) => f(dy.view[i] * f(h.view[i] * s.view[i]))));
    expect(Array.from(dh.view)).toEqual(map((i) => {
      const dyu = f(dy.view[i] * u.view[i]);
      return f(f(dyu * s.view[i]) + f(f(dyu * h.view[i]) * f(s.view[i] * f(1 - s.view[i]))));
    }));

    // RMSNorm rows: y = (x·r)·g; dx = (dy·g)·r − x·k, dg += (dy·x)·r
    const x = arr(0, r(8)), gam = arr(1, r(9)), dy2 = arr(2, r(10)), dg = arr(3, r(11)), y2 = arr(4), dx = arr(5);
    const dg0 = Array.from(dg.view), rr = f(1.7), kk = f(-0.3);
    k.scaleRow(x.p, gam.p, y2.p, nb, rr);
    expect(Array.from(y2.view)).toEqual(map((i) => f(f(x.view[i] * rr) * gam.view[i])));
    k.rmsRowGrad(dy2.p, gam.p, x.p, dx.p, dg.p, nb, rr, kk);
    expect(Array.from(dx.view)).toEqual(map((i) => f(f(f(dy2.view[i] * gam.view[i]) * rr) - f(x.view[i] * kk))));
    expect(Array.from(dg.view)).toEqual(map((i) => f(dg0[i] + f(f(dy2.view[i] * x.view[i]) * rr))));

    // RoPE: o1 = x1·c − x2·(s·σ), o2 = x1·(s·σ) + x2·c
    const x1 = arr(0, r(12)), x2 = arr(1, r(13)), c = arr(2, r(14)), sn = arr(3, r(15)), o1 = arr(4), o2 = arr(5);
    k.ropeRow(x1.p, x2.p, c.p, sn.p, o1.p, o2.p, nb, -1);
    const ss = map((i) => f(sn.view[i] * -1));
    expect(Array.from(o1.view)).toEqual(map((i) => f(f(x1.view[i] * c.view[i]) - f(x2.view[i] * ss[i]))));
    expect(Array.from(o2.view)).toEqual(map((i) => f(f(x1.view[i] * ss[i]) + f(x2.view[i] * c.view[i]))));

    // statistics: lane-wise max |x| (NaN wins); Σ (x/a)² and Σ (dy·g)·x, lanes 0, 1 (+) lanes 2, 3 in float64
    const xs = arr(0, r(16, 5)), ga = arr(1, r(17)), gb = arr(2, r(18));
    const out = 6 * STRIDE, f64 = new Float64Array(memory.buffer, out, 2), f32 = new Float32Array(memory.buffer, out, 4);
    k.maxAbs(xs.p, out, nb);
    expect(Array.from(f32)).toEqual([0, 1, 2, 3].map((l) => Math.max(Math.abs(xs.view[l]), Math.abs(xs.view[l + 4]))));
    /** The two f64 lanes: lane l sums elements l, l + 2, l + 4, l + 6 in the kernel's order. */
    const lanes = (term: (i: number) => number) => [0, 1].map((l) => (term(l) + term(l + 4)) + (term(l + 2) + term(l + 6)));
    const a = f(2.5);
    k.sumSquares(xs.p, out, nb, a);
    expect(Array.from(f64)).toEqual(lanes((i) => { const q = f(xs.view[i] / a); return f(q * q); }));
    k.dot3(xs.p, ga.p, gb.p, out, nb);
    expect(Array.from(f64)).toEqual(lanes((i) => f(f(xs.view[i] * ga.view[i]) * gb.view[i])));
    xs.view[5] = NaN;
    k.maxAbs(xs.p, out, nb);
    expect(Number.isNaN(f32[1])).toBe(true);
  });
});
