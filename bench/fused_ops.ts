/**
 * The fused wasm kernels (src/kernels/wasm_fused.ts) against the tfjs-op chains they replace, at small-lm's shapes
 * (configs/small-lm.yaml: 1024 tokens, D = 128, 4 heads, expert FFN 256 on ≈256 rows, all 3.48 M parameters for AdamW):
 * forward + backward of RMSNorm, attention (head split / merge with RoPE), SwiGLU FFN; one AdamW update and one
 * global-norm clip over every parameter.
 *   node bin/run-ts.js bench/fused_ops.ts [--rounds N]
 * Each round times the chain and the fused version of every op back to back; medians of the rounds are printed.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { setWasmFusedKernels } from '../src/kernels/wasm_fused.ts';
import { causalMask, causalSelfAttention, rmsNorm, ropeTables } from '../src/model/blocks.ts';
import { ffn } from '../src/moe/experts.ts';
import { adamwUpdate } from '../src/optim/adamw.ts';
import { clipOnDevice } from '../src/optim/clip.ts';

const arg = (name: string): string | undefined => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const rounds = Number(arg('--rounds') ?? 7);
await initBackend('wasm', { quiet: true });
const B = 8, L = 128, D = 128, H = 4, F = 256, rows = 256;
const r = (s: number[]) => tf.keep(tf.randomNormal(s, 0, 0.5) as tf.Tensor) as tf.Tensor2D;
const x = r([B * L, D]), g = r([D]), xe = r([rows, D]);
const att = { wq: r([D, D]), wk: r([D, D]), wv: r([D, D]), wo: r([D, D]) };
const w1 = r([D, F]), w2 = r([F, D]), w3 = r([D, F]);
const rope = ropeTables(L, D / H), mask = causalMask(L);
const shapes: number[][] = [[256, D], [D, 256], [D]];
for (let l = 0; l < 4; l++) shapes.push([D], [D, D], [D, D], [D, D], [D, D], [D], [D, 8], [8, D, F], [8, F, D], [8, D, F]);
const adam = shapes.map((s) => [r(s), r(s), tf.keep(tf.abs(r(s))), r(s)]);
const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, bc1: 0.1, bc2: 0.001 };

/** Forward and backward of f with respect to its inputs, all read back (wasm is synchronous). */
const fb = (f: (...a: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]) => () => tf.tidy(() => {
  const gs = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), 0.01)))(inputs);
  gs.forEach((t) => t.dataSync());
});
const cases: [string, () => void][] = [
  ['RMSNorm [1024,128] fwd+bwd ×9', () => { for (let i = 0; i < 9; i++) fb((a, b) => rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D), [x, g])(); }],
  ['attention B8 L128 H4 fwd+bwd ×4', () => { for (let i = 0; i < 4; i++) fb((a) => causalSelfAttention(a as tf.Tensor2D, att, B, L, H, rope, mask), [x])(); }],
  ['SwiGLU FFN [256,128→256] fwd+bwd ×32', () => { for (let i = 0; i < 32; i++) fb((a) => ffn(a as tf.Tensor2D, w1, w2, w3, 'swiglu'), [xe])(); }],
  ['AdamW, 3.48 M parameters', () => tf.tidy(() => { for (const [t, m, v, gg] of adam) adamwUpdate(t, m, v, gg, h).theta.dataSync(); })],
  ['global-norm clip, 3.48 M parameters', () => tf.tidy(() => { const c = clipOnDevice(Object.fromEntries(adam.map((a, i) => [`p${i}`, a[3]])), 1); c.parts.dataSync(); })],
];
const times = new Map<string, { chain: number[]; fused: number[] }>(cases.map(([n]) => [n, { chain: [], fused: [] }]));
const time = (f: () => void) => { const t0 = performance.now(); f(); return performance.now() - t0; };
for (const [, f] of cases) { setWasmFusedKernels(false); f(); setWasmFusedKernels(true); f(); } // warm-up
for (let k = 0; k < rounds; k++) {
  for (const [n, f] of cases) {
    setWasmFusedKernels(false); times.get(n)!.chain.push(time(f));
    setWasmFusedKernels(true); times.get(n)!.fused.push(time(f));
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
console.log(`${'op'.padEnd(40)} ${'tfjs ops'.padStart(10)} ${'fused'.padStart(10)}  ratio   (medians of ${rounds} interleaved rounds, ms)`);
for (const [n, t] of times) console.log(`${n.padEnd(40)} ${med(t.chain).toFixed(1).padStart(10)} ${med(t.fused).toFixed(1).padStart(10)}  ${(med(t.chain) / med(t.fused)).toFixed(2)}×`);
