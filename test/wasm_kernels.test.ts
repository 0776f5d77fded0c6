/**
 * The wasm kernels of src/kernels/wasm_fast.ts against the cpu backend (tfjs's reference kernels) and,
 * for the two new ones, against plain-array references written here.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, it, expect } from 'vitest';
import { initBackend, type BackendName } from '../src/backend.ts';
import { expectClose, randomArray } from './helpers.ts';

/** Runs fn on a backend and returns its outputs as plain arrays (tensors disposed). */
async function on(backend: BackendName, fn: () => tf.Tensor | tf.Tensor[]): Promise<number[][]> {
  await initBackend(backend, { quiet: true });
  return tf.tidy(() => {
    const r = fn();
    return (Array.isArray(r) ? r : [r]).map((t) => Array.from(t.dataSync()));
  });
}

/** fn on wasm equals fn on cpu, output by output. */
async function sameOnBoth(fn: () => tf.Tensor | tf.Tensor[]): Promise<number[][]> {
  const cpu = await on('cpu', fn);
  const wasm = await on('wasm', fn);
  expect(wasm.length).toBe(cpu.length);
  wasm.forEach((w, i) => expectClose(w, cpu[i], 1e-5, 1e-5));
  return wasm;
}

describe('wasm fast kernels vs the cpu backend', () => {
  it('Slice: contiguous and strided blocks, ranks 1–4, float and int', async () => {
    await sameOnBoth(() => {
      const x3 = tf.tensor(randomArray(4 * 5 * 6, 1), [4, 5, 6]);
      const x4 = tf.tensor(randomArray(3 * 4 * 5 * 2, 2), [3, 4, 5, 2]);
      const xi = tf.tensor2d(Int32Array.from({ length: 35 }, (_, i) => i * 7 - 50), [7, 5], 'int32');
      return [
        tf.slice(tf.tensor1d(randomArray(9, 3)), [2], [5]),
        tf.slice(x3, [1, 0, 0], [2, 5, 6]), // contiguous
        tf.slice(x3, [1, 2, 1], [3, 2, 4]), // strided on two axes
        tf.slice(x4, [0, 1, 2, 0], [3, 2, 3, 2]),
        tf.slice(xi, [2, 1], [4, 3]),
        tf.slice(x3, [0, 0, 0], [4, 0, 6]), // empty
      ];
    });
  });

  it('BatchMatMul with a batch: every transpose combination, rank 3 and 4, broadcast and batch-1 fallbacks', async () => {
    const r = (shape: number[], seed: number) => tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed), shape);
    const out = await sameOnBoth(() => [
      tf.matMul(r([3, 5, 4], 1), r([3, 4, 6], 2)),
      tf.matMul(r([3, 4, 5], 3), r([3, 4, 6], 4), true, false),
      tf.matMul(r([3, 5, 4], 5), r([3, 6, 4], 6), false, true),
      tf.matMul(r([3, 4, 5], 7), r([3, 6, 4], 8), true, true),
      tf.matMul(r([2, 3, 7, 8], 9), r([2, 3, 8, 5], 10)), // attention's [B, H, L, hd] shape
      tf.matMul(r([2, 3, 7, 8], 11), r([1, 3, 8, 5], 12)), // broadcast batch: the backend's own kernel
      tf.matMul(r([1, 7, 8], 13), r([1, 8, 5], 14)), // batch 1: the backend's own kernel
      tf.matMul(r([4, 0, 3], 15), r([4, 3, 2], 16)), // empty
    ]);
    // one entry by hand: [1,2;3,4]·[5;6] per batch entry, the second entry doubled
    const hand = await on('wasm', () => tf.matMul(tf.tensor3d([1, 2, 3, 4, 2, 4, 6, 8], [2, 2, 2]), tf.tensor3d([5, 6, 5, 6], [2, 2, 1])));
    expect(hand[0]).toEqual([17, 39, 34, 78]);
    expect(out[4].length).toBe(2 * 3 * 7 * 5);
  });

  it('BatchMatMul with a batch: gradients equal the cpu backend\'s', async () => {
    const f = () => {
      const a = tf.tensor(randomArray(2 * 3 * 4 * 5, 21), [2, 3, 4, 5]);
      const b = tf.tensor(randomArray(2 * 3 * 5 * 6, 22), [2, 3, 5, 6]);
      const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y))));
      return g([a, b]);
    };
    await sameOnBoth(f);
  });

  it('Unpack and SplitV on every axis', async () => {
    const x = () => tf.tensor(randomArray(3 * 4 * 5, 4), [3, 4, 5]);
    await sameOnBoth(() => [...tf.unstack(x(), 0), ...tf.unstack(x(), 1), ...tf.unstack(x(), 2)]);
    await sameOnBoth(() => [...tf.split(x(), [1, 2], 0), ...tf.split(x(), [3, 0, 1], 1), ...tf.split(x(), 5, 2)]);
  });

  it('GatherV2 on axis 0 (rows, duplicates, 2-D indices) and other axes (fallback)', async () => {
    const x = () => tf.tensor(randomArray(6 * 3 * 2, 5), [6, 3, 2]);
    const out = await sameOnBoth(() => [
      tf.gather(x(), tf.tensor1d([5, 0, 5, 2], 'int32')),
      tf.gather(x(), tf.tensor2d([[1, 1], [4, 3]], [2, 2], 'int32')),
      tf.gather(x(), tf.tensor1d([2, 0], 'int32'), 1),
      tf.gather(tf.tensor2d([[1, 2], [3, 4]], [2, 2], 'int32'), tf.tensor1d([1, 1, 0], 'int32')),
    ]);
    expect(out[3]).toEqual([3, 4, 3, 4, 1, 2]); // hand-computed
    await initBackend('wasm', { quiet: true });
    expect(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], 'int32'))).toThrow(/index value 3/);
  });

  it('UnsortedSegmentSum equals a plain-array segment sum and the cpu kernel', async () => {
    const N = 37, D = 5, S = 9;
    const xv = randomArray(N * D, 6);
    const ids = Int32Array.from({ length: N }, (_, n) => (n * 5) % S);
    const ref = new Float64Array(S * D);
    for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) ref[ids[n] * D + d] += xv[n * D + d];
    const [got] = await sameOnBoth(() => tf.unsortedSegmentSum(tf.tensor2d(xv, [N, D]), tf.tensor1d(ids, 'int32'), S));
    expectClose(got, Array.from(ref), 1e-5, 1e-5);
    // rank-1 data and int32 data
    await sameOnBoth(() => [
      tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([1, 0, 1, 3], 'int32'), 4),
      tf.unsortedSegmentSum(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], 'int32'), tf.tensor1d([2, 2, 0], 'int32'), 3),
    ]);
  });

  it("tf.gather's gradient (UnsortedSegmentSum) now runs on wasm and matches cpu", async () => {
    const xv = randomArray(5 * 4, 7);
    const idx = [4, 1, 4, 4, 0];
    const c = randomArray(5 * 4, 8);
    const [g] = await sameOnBoth(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.gather(x, tf.tensor1d(idx, 'int32')), tf.tensor2d(c, [5, 4]))))(tf.tensor2d(xv, [5, 4])));
    const ref = new Float64Array(20);
    idx.forEach((r, n) => { for (let d = 0; d < 4; d++) ref[r * 4 + d] += c[n * 4 + d]; });
    expectClose(g, Array.from(ref));
  });
});
