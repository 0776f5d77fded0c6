import * as tf from '@tensorflow/tfjs';
import { it, expect } from 'vitest';
import { gatherRows } from '../src/ops/gather_rows.ts';
import { scatterRows } from '../src/ops/scatter_rows.ts';
import { crossEntropy } from '../src/ops/cross_entropy.ts';
import { describeBackends, expectClose, finiteDiff, randomArray } from './helpers.ts';

describeBackends('gatherRows / scatterRows', () => {
  it('gathers rows and scatters gradients back, summing duplicates', () => {
    const x = tf.tensor2d(randomArray(12, 3), [4, 3]);
    const idx = tf.tensor1d([2, 0, 2, 3], 'int32');
    const xs = x.arraySync();
    const out = gatherRows(x, idx).arraySync();
    expect(out).toEqual([xs[2], xs[0], xs[2], xs[3]]);
    // d/dx Σ_n c_n · out[n] with c_n = n+1: row 2 gets 1+3, row 0 gets 2, row 1 gets 0, row 3 gets 4.
    const c = tf.tensor2d([[1], [2], [3], [4]]);
    const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(gatherRows(xx as tf.Tensor2D, idx), c)))(x);
    expectClose(g.dataSync(), [2, 2, 2, 0, 0, 0, 4, 4, 4, 4, 4, 4]);
  });

  it('scatterRows sums rows into segments; gradient gathers', () => {
    const y = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const idx = tf.tensor1d([1, 1, 0], 'int32');
    expectClose(scatterRows(y, idx, 3).dataSync(), [5, 6, 4, 6, 0, 0]);
    const w = tf.tensor2d([[1, 10], [100, 1000], [7, 7]]);
    const g = tf.grad((yy: tf.Tensor) => tf.sum(tf.mul(scatterRows(yy as tf.Tensor2D, idx, 3), w)))(y);
    expectClose(g.dataSync(), [100, 1000, 100, 1000, 1, 10]);
  });
});

describeBackends('TopK gradient', () => {
  it('scatters the values gradient back to the picked positions (finite differences)', async () => {
    await import('../src/ops/topk_grad.ts');
    const x0 = randomArray(12, 41, 2);
    const c = tf.tensor2d([[1, -2], [0.5, 3], [2, 1]]);
    const f = (xx: tf.Tensor) => tf.sum(tf.mul(tf.topk(xx, 2).values, c)) as tf.Scalar;
    const g = tf.grad(f)(tf.tensor2d(x0, [3, 4])).dataSync();
    // by hand: each row's top-2 positions receive c[row]; others 0
    const expected = new Float32Array(12);
    for (let r = 0; r < 3; r++) {
      const order = [0, 1, 2, 3].sort((a, b) => x0[r * 4 + b] - x0[r * 4 + a]);
      const cr = c.arraySync()[r];
      expected[r * 4 + order[0]] = cr[0];
      expected[r * 4 + order[1]] = cr[1];
    }
    expectClose(g, expected);
  });
});

describeBackends('stopGradient', () => {
  it('passes values through and contributes a zero gradient', async () => {
    const { stopGradient } = await import('../src/ops/stop_gradient.ts');
    const x = tf.tensor1d([1, -2, 3]);
    expect(Array.from(stopGradient(x).dataSync())).toEqual([1, -2, 3]);
    // d/dx [x² + x·stop(x)] = 2x + stop(x) = 3x
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.add(tf.square(v), tf.mul(v, stopGradient(v)))))(x);
    expectClose(g.dataSync(), [3, -6, 9]);
  });
});

describeBackends('BatchMatMul gradient (explicit transposes)', () => {
  it('matches finite differences for every transpose flag and for batched operands', async () => {
    await import('../src/ops/matmul_grad.ts');
    const cases: [number[], number[], boolean, boolean][] = [
      [[3, 4], [4, 2], false, false], [[4, 3], [4, 2], true, false], [[3, 4], [2, 4], false, true],
      [[4, 3], [2, 4], true, true], [[2, 3, 4], [2, 4, 5], false, false],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const a0 = randomArray(sa.reduce((x, y) => x * y, 1), 51, 1);
      const b0 = randomArray(sb.reduce((x, y) => x * y, 1), 52, 1);
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.matMul(a, b, ta, tb))) as tf.Scalar;
      const [ga, gb] = tf.grads(f)([tf.tensor(a0, sa), tf.tensor(b0, sb)]);
      const fa = finiteDiff((x) => f(tf.tensor(x, sa), tf.tensor(b0, sb)).dataSync()[0], a0.slice(), 1e-2);
      const fb = finiteDiff((x) => f(tf.tensor(a0, sa), tf.tensor(x, sb)).dataSync()[0], b0.slice(), 1e-2);
      expectClose(ga.dataSync(), Array.from(fa), 2e-3, 2e-3);
      expectClose(gb.dataSync(), Array.from(fb), 2e-3, 2e-3);
    }
  });
});

describeBackends('crossEntropy (fused gradient)', () => {
  it('value equals a float64 reference and the gradient equals finite differences', () => {
    const N = 5, V = 7;
    const z0 = randomArray(N * V, 41).map((v) => v * 3);
    const y = Int32Array.from([0, 6, 3, 3, 1]);
    // reference: (1/N) Σ_n [log Σ_v exp z_nv − z_n,y_n] in float64
    let ref = 0;
    for (let n = 0; n < N; n++) {
      const row = Array.from(z0.slice(n * V, (n + 1) * V));
      const m = Math.max(...row);
      ref += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[y[n]];
    }
    ref /= N;
    const f = (z: Float32Array) => tf.tidy(() => crossEntropy(tf.tensor2d(z, [N, V]), y).dataSync()[0]);
    expect(Math.abs(f(z0.slice()) - ref)).toBeLessThan(1e-5);
    // scaled by 2 downstream, so dy ≠ 1 reaches the gradient
    const g = tf.grad((z: tf.Tensor) => tf.mul(crossEntropy(z as tf.Tensor2D, y), 2))(tf.tensor2d(z0, [N, V]));
    const fd = finiteDiff((z) => 2 * f(z), z0.slice(), 1e-2);
    expectClose(g.dataSync(), fd, 2e-3, 2e-2);
  });
});
