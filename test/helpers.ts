/** Test helpers: run a suite on every CPU backend, compare arrays, finite differences. */
import * as tf from '@tensorflow/tfjs';
import { describe, beforeAll, expect } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { initBackend, type BackendName } from '../src/backend.ts';

/** Numbers are checked on both wasm and cpu (the project's rule). */
export const TEST_BACKENDS: BackendName[] = ['wasm', 'cpu'];

/** describe(name) once per backend, with that backend active for its tests. */
export function describeBackends(name: string, body: (backend: BackendName) => void): void {
  for (const b of TEST_BACKENDS) {
    describe(`${name} [${b}]`, () => {
      beforeAll(async () => {
        await initBackend(b, { quiet: true });
      });
      body(b);
    });
  }
}

/**
 * Activates webgpu if an adapter exists: false means the WebGPU tests skip (a machine without a GPU and
 * without test/lavapipe/run.sh). Under SWITCHYARD_REQUIRE_WEBGPU=1 (CI) a missing adapter throws instead.
 */
export async function webgpuAvailable(): Promise<boolean> {
  return (await initBackend('webgpu', { quiet: true })) === 'webgpu';
}

/** Asserts |a_i - b_i| <= atol + rtol·|b_i| elementwise, with a message naming the first bad index. */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-5, rtol = 1e-4): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const ok = Math.abs(a[i] - b[i]) <= atol + rtol * Math.abs(b[i]);
    if (!ok) throw new Error(`mismatch at ${i}: got ${a[i]}, expected ${b[i]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Central finite-difference gradient of a scalar function f(x) at x (float64 arithmetic in f is up to f). */
export function finiteDiff(f: (x: Float32Array) => number, x: Float32Array, eps = 1e-2): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const save = x[i];
    x[i] = save + eps;
    const fp = f(x);
    x[i] = save - eps;
    const fm = f(x);
    x[i] = save;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

/** Evaluates a tfjs scalar function on a flat array reshaped to `shape`. */
export function scalarAt(fn: (t: tf.Tensor) => tf.Scalar, shape: number[]): (x: Float32Array) => number {
  return (x) => tf.tidy(() => fn(tf.tensor(x, shape)).dataSync()[0]);
}

/** Deterministic pseudo-random floats in [-scale, scale) for test inputs. */
export function randomArray(n: number, seed = 1, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 * scale - scale;
  }
  return out;
}

/** A one-block MoE LM config as YAML (steps take milliseconds); `over` replaces or adds top-level fields. */
export function tinyLmYaml(over: Record<string, unknown> = {}): string {
  const base: Record<string, unknown> = {
    layers: 1, dim: 16, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 16, seq_len: 16, batch_size: 2, steps: 4,
    eval_every: 0, eval_batches: 1, log_every: 1, checkpoint_every: 2, warmup_steps: 0, data: { source: 'nlp-corpus', max_chars: 20000 },
  };
  return stringifyYaml({ ...base, ...over });
}
