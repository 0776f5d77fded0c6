/**
 * Seed 000's experiment as a regression test: one MoE layer (batch 4 × seq 10 = 40 tokens, dim 128,
 * 8 experts, k = 2, hidden 4·dim), Adam 1e-3, 100 steps on fixed random inputs/targets with MSE.
 * The loss must fall, and with the Switch loss at 0.01 the expert load must end more even (lower CV).
 */
import * as tf from '@tensorflow/tfjs';
import { it, expect } from 'vitest';
import { MoELayer } from '../src/moe/layer.ts';
import { Rng } from '../src/rng.ts';
import { describeBackends } from './helpers.ts';

/** Population CV of the per-expert loads (std / mean), written out here rather than imported. */
function loadCv(load: Int32Array): number {
  const m = load.reduce((a, b) => a + b, 0) / load.length;
  return Math.sqrt(load.reduce((s, v) => s + (v - m) ** 2, 0) / load.length) / m;
}

function train(seed: number, switchWeight: number): { first: number; last: number; cv: number } {
  const rng = new Rng(seed);
  const layer = new MoELayer({
    dim: 128, hidden: 512, numExperts: 8, topK: 2, activation: 'relu', router: { type: 'topk' },
    capacityFactor: null, capacityPolicy: 'dropless', sharedExperts: 0, auxLosses: ['switch'],
  }, rng);
  const x = tf.tensor2d(rng.normals(40 * 128), [40, 128]);
  const target = tf.tensor2d(rng.normals(40 * 128), [40, 128]);
  const opt = tf.train.adam(1e-3);
  const losses: number[] = [];
  const cvs: number[] = [];
  for (let step = 0; step < 100; step++) {
    let load: Int32Array = new Int32Array(8);
    const total = opt.minimize(() => {
      const out = layer.forward(x, { training: true });
      load = out.stats.load;
      const mse = tf.losses.meanSquaredError(target, out.y) as tf.Scalar;
      losses.push(mse.dataSync()[0]);
      return tf.add(mse, tf.mul(switchWeight, out.aux.switch!)) as tf.Scalar;
    }, true, layer.variables());
    total?.dispose();
    if (step >= 80) cvs.push(loadCv(load)); // the last 20 steps: the end state, less noisy than one step
  }
  layer.dispose();
  opt.dispose();
  tf.dispose([x, target]);
  return { first: losses[0], last: losses[losses.length - 1], cv: cvs.reduce((a, b) => a + b, 0) / cvs.length };
}

describeBackends('seed-000 regression: 1-layer MoE, 100 Adam steps', (backend) => {
  it('lowers the loss, and the Switch loss at 0.01 ends with a lower load CV than none', () => {
    // The cpu backend is ≈5× slower here; one seed there keeps the suite inside its time budget.
    const seeds = backend === 'wasm' ? [1, 2, 3] : [1];
    const plain = seeds.map((s) => train(s, 0));
    const balanced = seeds.map((s) => train(s, 0.01));
    for (const r of [...plain, ...balanced]) expect(r.last).toBeLessThan(0.1 * r.first);
    const mean = (rs: { cv: number }[]) => rs.reduce((a, r) => a + r.cv, 0) / rs.length;
    expect(mean(balanced)).toBeLessThan(mean(plain));
  }, 400_000); // ≈40 s on wasm, ≈90 s on the cpu backend (its elementwise ops make Adam slow), more under load
});
