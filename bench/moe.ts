/**
 * MoE layer vs dense FFN benchmark: forward + backward time and tokens/s at the reference CPU shape
 * (T=4096, D=512, H=2048, E=8, k=2), and a dense FFN of equal active FLOPs (hidden k·H).
 */
import * as tf from '@tensorflow/tfjs';
import { MoELayer, type MoEConfig } from '../src/moe/layer.ts';
import { ffn, initVariable } from '../src/moe/experts.ts';
import { Rng } from '../src/rng.ts';

export interface StepTiming { median_ms: number; min_ms: number; runs: number; tokens_per_s: number; gflops: number }

/** Times fn (one training step's forward+backward) after one warm-up; returns median and min. */
export function timeSteps(fn: () => void, runs: number, tokens: number, flops: number): StepTiming {
  fn(); // warm-up: kernels compile, memory grows once
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)];
  return { median_ms: +median.toFixed(1), min_ms: +ms[0].toFixed(1), runs, tokens_per_s: Math.round(tokens / (median / 1000)), gflops: +(flops / (median / 1000) / 1e9).toFixed(2) };
}

/** Forward+backward FLOPs of the expert matmuls: 3 passes (fwd, dX, dW) × 2 matmuls × 2·rows·D·H. */
export function ffnFlops(rows: number, D: number, H: number, swiglu = false): number {
  return 3 * (swiglu ? 3 : 2) * 2 * rows * D * H;
}

export async function benchMoe(opts: { T?: number; D?: number; H?: number; E?: number; k?: number; runs?: number } = {}): Promise<Record<string, unknown>> {
  const { T = 4096, D = 512, H = 2048, E = 8, k = 2, runs = 3 } = opts;
  const rng = new Rng(1);
  const cfg: MoEConfig = { dim: D, hidden: H, numExperts: E, topK: k, activation: 'relu', router: { type: 'topk' }, capacityFactor: null, capacityPolicy: 'dropless', sharedExperts: 0, auxLosses: ['switch'] };
  const layer = new MoELayer(cfg, rng);
  const x = tf.tensor2d(rng.normals(T * D), [T, D]);
  const flops = ffnFlops(T * k, D, H);
  const moeStep = () => tf.tidy(() => {
    const { grads } = tf.variableGrads(() => {
      const out = layer.forward(x, { training: true });
      return tf.add(tf.mean(tf.square(out.y)), tf.mul(0.01, out.aux.switch!)) as tf.Scalar;
    }, layer.variables());
    Object.values(grads).forEach((g) => g.dataSync()); // wait for the backward pass to finish
  });
  const moe = timeSteps(moeStep, runs, T, flops);
  layer.dispose();

  const w1 = initVariable(rng, [D, k * H], 0.02);
  const w2 = initVariable(rng, [k * H, D], 0.02);
  const denseStep = () => tf.tidy(() => {
    const { grads } = tf.variableGrads(() => tf.mean(tf.square(ffn(x, w1 as tf.Tensor as tf.Tensor2D, w2 as tf.Tensor as tf.Tensor2D, null, 'relu'))) as tf.Scalar, [w1, w2]);
    Object.values(grads).forEach((g) => g.dataSync());
  });
  const dense = timeSteps(denseStep, runs, T, ffnFlops(T, D, k * H));
  tf.dispose([w1, w2, x]);
  return { shape: { T, D, H, E, k }, moe_layer: moe, dense_ffn_equal_active_flops: dense, moe_over_dense_time: +(moe.median_ms / dense.median_ms).toFixed(3) };
}
