/**
 * WebGPU only: times the WGSL GEMM's tile candidates on the expert FFN of the benchmark shape (forward +
 * backward = 6 GEMMs over [E, C, ·]) and checks each against tfjs's matMul; also the GEMM alone on 8192²
 * against tfjs's matMul, the same-run ceiling.
 */
import * as tf from '@tensorflow/tfjs';
import type { GemmTile } from '../src/kernels/webgpu_gemm.ts';
import { batchGemm, gemmTuning, paddedExpertFfn } from '../src/moe/expert_ffn.ts';
import { dotLoss, settle, timeAsync, timeQueued, type Shape, type Timing } from './speed.ts';
import { ffnFlops } from './moe.ts';

export const TILES: GemmTile[] = [
  { bm: 128, bn: 128, bk: 16 }, { bm: 128, bn: 128, bk: 8 }, { bm: 128, bn: 64, bk: 16 }, { bm: 64, bn: 128, bk: 16 }, { bm: 64, bn: 64, bk: 16 }, { bm: 64, bn: 64, bk: 8 },
];

/** ‖a − b‖ / ‖b‖. */
async function relErr(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const e = tf.tidy(() => tf.div(tf.norm(tf.sub(a, b)), tf.norm(b)));
  const v = (await e.data())[0];
  e.dispose();
  return v;
}

export async function gemmSearch(s: Shape, n = 8192): Promise<{ best: GemmTile; ffn: (Timing & GemmTile & { gflops: number; rel_err: number })[]; square: Record<string, number> }> {
  const C = Math.ceil((s.T * s.k) / s.E / 4 * 1.03) * 4; // a typical padded block (max load ≈ 3% above the mean)
  const xp = tf.tidy(() => tf.variable(tf.randomNormal([s.E, C, s.D]) as tf.Tensor3D));
  const w1 = tf.tidy(() => tf.variable(tf.mul(tf.randomNormal([s.E, s.D, s.H]), 0.02) as tf.Tensor3D));
  const w2 = tf.tidy(() => tf.variable(tf.mul(tf.randomNormal([s.E, s.H, s.D]), 0.02) as tf.Tensor3D));
  const c = tf.randomNormal([s.E, C, s.D]);
  const experts = { w1, w2, w3: null };
  const ref = tf.tidy(() => tf.matMul(tf.relu(tf.matMul(xp, w1)), w2));
  const rows: (Timing & GemmTile & { gflops: number; rel_err: number })[] = [];
  for (const tile of TILES) {
    gemmTuning.tile = tile;
    const y = tf.tidy(() => paddedExpertFfn(xp, experts, 'relu'));
    const rel = await relErr(y, ref);
    y.dispose();
    const t = await timeAsync(async () => {
      const g = tf.tidy(() => Object.values(tf.variableGrads(() => dotLoss(paddedExpertFfn(xp, experts, 'relu'), c), [xp, w1, w2]).grads));
      await settle(g);
      tf.dispose(g);
    }, 5);
    rows.push({ ...tile, ...t, gflops: +(ffnFlops(s.E * C, s.D, s.H) / (t.median_ms / 1000) / 1e9).toFixed(0), rel_err: +rel.toExponential(2) });
    process.stderr.write(`    tile ${tile.bm}×${tile.bn}×${tile.bk}: ${t.median_ms} ms, rel err ${rel.toExponential(2)}\n`);
  }
  const ok = rows.filter((r) => r.rel_err < 1e-4);
  const best = (ok.length ? ok : rows).reduce((a, b) => (b.median_ms < a.median_ms ? b : a));
  const bestTile: GemmTile = { bm: best.bm, bn: best.bn, bk: best.bk };
  gemmTuning.tile = bestTile;
  tf.dispose([xp, w1, w2, c, ref]);
  // The GEMM alone on one n² product, against tfjs's matMul in the same run.
  const a = tf.randomNormal([1, n, n]) as tf.Tensor3D, b = tf.randomNormal([1, n, n]) as tf.Tensor3D;
  const tOurs = await timeQueued(() => batchGemm(a, b, false, false), 5);
  const tTfjs = await timeQueued(() => tf.matMul(a, b), 5);
  tf.dispose([a, b]);
  const gf = (ms: number) => +((2 * n ** 3) / (ms / 1000) / 1e9).toFixed(0);
  return { best: bestTile, ffn: rows, square: { n, wgsl_ms: tOurs.median_ms, wgsl_gflops: gf(tOurs.median_ms), tfjs_ms: tTfjs.median_ms, tfjs_gflops: gf(tTfjs.median_ms) } };
}
