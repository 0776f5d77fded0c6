/**
 * The one place that chooses and initialises the TensorFlow.js backend.
 * wasm is the default in Node (SIMD, ≈30× the cpu backend on matMul); cpu is the fallback;
 * webgpu is used where a GPU adapter exists and falls back to wasm otherwise (never hangs), except where
 * SWITCHYARD_REQUIRE_WEBGPU=1 (CI, under software Vulkan): there a missing adapter or a Dawn that fails to
 * load is an error, so the WebGPU tests fail instead of skipping.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import './ops/topk_grad.ts';
import './ops/matmul_grad.ts';
import './kernels/wasm_fast.ts';
import { watchGpuErrors } from './webgpu_device.ts';

export type BackendName = 'wasm' | 'cpu' | 'webgpu';
export const BACKENDS: readonly BackendName[] = ['wasm', 'cpu', 'webgpu'];

let webgpuTried = false;

/** Registers the WebGPU backend if a GPU adapter can be had; returns false (and why) otherwise. */
async function registerWebGpu(): Promise<{ ok: boolean; why?: string }> {
  if (webgpuTried) return { ok: tf.findBackend('webgpu') != null };
  webgpuTried = true;
  try {
    const g = globalThis as Record<string, unknown>;
    if (!(g.navigator as { gpu?: unknown } | undefined)?.gpu) {
      // Dawn's Node binding: sets navigator.gpu and the WebGPU globals (GPUBufferUsage, ...).
      const mod = 'webgpu';
      const webgpu = (await import(mod)) as { create: (o: string[]) => unknown; globals: object };
      Object.assign(globalThis, webgpu.globals);
      // SWITCHYARD_DAWN: extra Dawn options, e.g. enable-dawn-features=disable_robustness (benchmarks only)
      const options = process.env.SWITCHYARD_DAWN ? process.env.SWITCHYARD_DAWN.split(';') : [];
      Object.defineProperty(globalThis, 'navigator', { value: { gpu: webgpu.create(options) }, configurable: true });
    }
    const gpu = (g.navigator as { gpu: { requestAdapter(): Promise<unknown> } }).gpu;
    const adapter = await Promise.race([
      gpu.requestAdapter(),
      new Promise((r) => setTimeout(() => r(null), 10_000)),
    ]);
    if (!adapter) return { ok: false, why: 'no GPU adapter found' };
    await import('@tensorflow/tfjs-backend-webgpu'); // a literal, so a bundle (the GPU run's) carries it
    return { ok: true };
  } catch (e) {
    return { ok: false, why: (e as Error).message.split('\n')[0] };
  }
}

/** True where SWITCHYARD_REQUIRE_WEBGPU=1: asking for webgpu without an adapter is an error, not a fallback. */
export function webgpuRequired(): boolean {
  return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.SWITCHYARD_REQUIRE_WEBGPU === '1';
}

/** Sets the active backend; returns the backend actually in use (webgpu falls back to wasm). */
export async function initBackend(name: BackendName = 'wasm', opts: { quiet?: boolean } = {}): Promise<BackendName> {
  if (!BACKENDS.includes(name)) {
    throw new Error(`backend: '${String(name)}' is not one of ${BACKENDS.join(', ')}`);
  }
  let target: BackendName = name;
  if (name === 'webgpu') {
    const r = await registerWebGpu();
    if (!r.ok && webgpuRequired()) {
      throw new Error(`backend: webgpu unavailable (${r.why}) and SWITCHYARD_REQUIRE_WEBGPU=1 forbids the fallback to wasm`);
    }
    if (!r.ok) {
      if (!opts.quiet) console.warn(`switchyard: webgpu unavailable (${r.why}); falling back to wasm`);
      target = 'wasm';
    }
  }
  if (tf.getBackend() !== target) {
    // tfjs prints an advert for tfjs-node when the cpu backend starts in Node: not useful here.
    const warn = console.warn;
    console.warn = () => {};
    try {
      const ok = await tf.setBackend(target);
      if (!ok) throw new Error(`backend '${target}' failed to initialise`);
      await tf.ready();
      tf.tensor1d([0]).dispose(); // the cpu backend prints its advert on its first write: mute it
    } finally {
      console.warn = warn;
    }
  }
  if (target === 'webgpu') watchGpuErrors();
  return target;
}

/** True once Dawn was started in this process (its instance keeps Node's event loop alive: exit explicitly). */
export function dawnStarted(): boolean {
  return webgpuTried && (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu !== undefined;
}

/** The name of the backend in use. */
export function currentBackend(): string {
  return tf.getBackend();
}
