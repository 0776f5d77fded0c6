/**
 * Tensors laid end to end in one flat Float32Array (a SharedArrayBuffer between data-parallel ranks), copied
 * without a JS allocation per step: on wasm straight from the tensor's heap view, so the ranks' exchange of
 * weights and gradients makes no garbage (large short-lived ArrayBuffers kept V8's collector busy on other cores).
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmBackendLike } from '../kernels/wasm_fast.ts';

/** Where each tensor lies in the flat array, in the given order. */
export interface FlatLayout {
  entries: { name: string; offset: number; shape: number[]; size: number }[];
  total: number;
}

/** The layout of these named tensors, end to end in entry order. */
export function flatLayout(named: Record<string, tf.Tensor>): FlatLayout {
  let offset = 0;
  const entries = Object.entries(named).map(([name, t]) => {
    const e = { name, offset, shape: t.shape, size: t.size };
    offset += t.size;
    return e;
  });
  return { entries, total: offset };
}

/** dst.set(t's values, at): on wasm from the heap view (no copy made on the way), else from `await data()`. */
export async function copyInto(t: tf.Tensor, dst: Float32Array, at: number): Promise<void> {
  if (tf.getBackend() === 'wasm') {
    dst.set((tf.backend() as unknown as WasmBackendLike).typedArrayFromHeap(t) as Float32Array, at); // view taken and used at once: no heap growth between
    return;
  }
  dst.set((await t.data()) as Float32Array, at);
}

/** Writes the named tensors into flat at layout's offsets. */
export async function writeFlat(named: Record<string, tf.Tensor>, layout: FlatLayout, flat: Float32Array): Promise<void> {
  for (const e of layout.entries) await copyInto(named[e.name], flat, e.offset);
}

/** A tensor of `view`'s values: on wasm copied into the heap by the upload itself; elsewhere copied first (the cpu backend would keep the shared view). */
export function tensorFrom(view: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.getBackend() === 'wasm' ? view : view.slice(), shape);
}
