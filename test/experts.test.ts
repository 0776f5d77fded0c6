import * as tf from '@tensorflow/tfjs';
import { it, expect } from 'vitest';
import { runExperts } from '../src/moe/experts.ts';
import { describeBackends, expectClose, finiteDiff, randomArray } from './helpers.ts';

describeBackends('runExperts', () => {
  it('trains when every row went to one expert (a collapsed router), matching finite differences', () => {
    const xs = tf.tensor2d(randomArray(12, 3, 1), [4, 3]);
    const w = {
      w1: tf.variable(tf.tensor3d(randomArray(3 * 3 * 2, 4, 1), [3, 3, 2])),
      w2: tf.variable(tf.tensor3d(randomArray(3 * 2 * 3, 5, 1), [3, 2, 3])),
      w3: null,
    };
    const sizes = [0, 4, 0]; // all four rows on expert 1
    const f = () => tf.sum(tf.square(runExperts(xs, w, sizes, 'gelu'))) as tf.Scalar;
    const { grads } = tf.variableGrads(f, [w.w1]);
    const g = grads[w.w1.name].dataSync();
    const w0 = w.w1.dataSync().slice() as Float32Array;
    const fd = finiteDiff((a) => { w.w1.assign(tf.tensor3d(a, [3, 3, 2])); return f().dataSync()[0]; }, w0, 1e-2);
    expectClose(g, Array.from(fd), 2e-3, 2e-2);
    expect(Array.from(g.slice(0, 6))).toEqual([0, 0, 0, 0, 0, 0]); // idle experts get zero gradient
  });
});
