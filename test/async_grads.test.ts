/** variableGradsAsync (a forward pass that awaits read-backs) against tf.variableGrads on the same function. */
import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { variableGradsAsync } from '../src/ops/async_grads.ts';
import { describeBackends, expectClose, randomArray } from './helpers.ts';

describeBackends('variableGradsAsync', () => {
  it('equals tf.variableGrads on a two-layer function with a data-dependent step, and leaks no tensor', async () => {
    const w1 = tf.variable(tf.tensor2d(randomArray(12, 1), [4, 3]), true, 'ag_w1');
    const w2 = tf.variable(tf.tensor2d(randomArray(6, 2), [3, 2]), true, 'ag_w2');
    const frozen = tf.variable(tf.tensor1d([0.5, -1]), false, 'ag_frozen');
    const x = tf.tensor2d(randomArray(20, 3), [5, 4]);
    // the row picked after layer 1 depends on its values: read back in the async version, dataSync in the reference
    const body = (pick: number) => {
      const h = tf.relu(tf.matMul(x, w1)); // [5, 3]
      const row = tf.slice(h, [pick, 0], [1, 3]);
      return tf.sum(tf.mul(tf.matMul(tf.add(h, row), w2), frozen)) as tf.Scalar;
    };
    const argmaxRow = (h: Float32Array | Int32Array | Uint8Array) => Array.from(h).reduce((best, v, i, a) => (v > a[best] ? i : best), 0);
    const ref = tf.variableGrads(() => {
      const s = tf.tidy(() => tf.sum(tf.relu(tf.matMul(x, w1)), 1));
      const pick = argmaxRow(s.dataSync());
      s.dispose();
      return body(pick);
    }, [w1, w2, frozen]);
    const before = tf.memory().numTensors;
    const got = await variableGradsAsync(async () => {
      const s = tf.sum(tf.relu(tf.matMul(x, w1)), 1);
      const pick = argmaxRow(await s.data());
      return body(pick);
    }, [w1, w2, frozen]);
    expect(Object.keys(got.grads).sort()).toEqual(['ag_w1', 'ag_w2']); // the non-trainable variable gets none
    expectClose(await got.value.data(), await ref.value.data(), 1e-6, 1e-6);
    expectClose(await got.grads.ag_w1.data(), await ref.grads.ag_w1.data(), 1e-6, 1e-5);
    expectClose(await got.grads.ag_w2.data(), await ref.grads.ag_w2.data(), 1e-6, 1e-5);
    expect(tf.memory().numTensors).toBe(before + 3); // the value and two gradients, nothing else
    tf.dispose([got.value, ...Object.values(got.grads), ref.value, ...Object.values(ref.grads).filter((g) => g !== null) as tf.Tensor[], x, w1, w2, frozen]);
  });

  it('a failing forward leaves no tape open: the next gradient works', async () => {
    const w = tf.variable(tf.scalar(2), true, 'ag_fail');
    await expect(variableGradsAsync(async () => { tf.mul(w, 3); throw new Error('boom'); }, [w])).rejects.toThrow('boom');
    const g = await variableGradsAsync(async () => tf.square(w) as tf.Scalar, [w]);
    expectClose(await g.grads.ag_fail.data(), [4]);
    tf.dispose([w, g.value, g.grads.ag_fail]);
  });
});
