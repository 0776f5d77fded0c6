/**
 * Which tfjs backend a playground worker trains on: WebGPU where the browser gives an adapter, else wasm, or the
 * one the page forces (its backend control, URL parameter `backend=`). Plain logic (no tfjs): the worker starts
 * the backend this picks, and the tests check the choice without a browser.
 */

/** The page's backend control: auto (WebGPU where an adapter answers, else wasm), or one forced. */
export const BACKEND_CHOICES = ['auto', 'webgpu', 'wasm'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** The part of `navigator` this reads (a worker's WorkerNavigator). */
export interface GpuNavigator { gpu?: { requestAdapter(): Promise<unknown> } }

/** Why WebGPU cannot train here (no navigator.gpu, or no adapter within timeoutMs), or null when an adapter answers. */
export async function webgpuMissing(nav: GpuNavigator | undefined, timeoutMs = 10_000): Promise<string | null> {
  const gpu = nav?.gpu;
  if (!gpu) return 'no navigator.gpu in this browser';
  // a driver that never answers must not hang the page: wasm after the timeout
  let timer: ReturnType<typeof setTimeout> | undefined;
  const adapter = await Promise.race([
    gpu.requestAdapter().catch(() => null),
    new Promise((r) => { timer = setTimeout(() => r(null), timeoutMs); }),
  ]);
  clearTimeout(timer);
  return adapter ? null : 'navigator.gpu gave no adapter';
}

/** The backend to start for `choice` when WebGPU is `missing` (a reason) or not (null); forcing webgpu where it is missing is an error. */
export function pickBackend(choice: BackendChoice, missing: string | null): { backend: 'webgpu' | 'wasm'; note: string } {
  if (choice === 'wasm') return { backend: 'wasm', note: 'forced (backend=wasm)' };
  if (missing) {
    if (choice === 'webgpu') throw new Error(`backend webgpu was asked for, but WebGPU is not available: ${missing}; choose auto or wasm`);
    return { backend: 'wasm', note: `no WebGPU: ${missing}` };
  }
  return { backend: 'webgpu', note: choice === 'webgpu' ? 'forced (backend=webgpu)' : 'the browser gave a GPU adapter' };
}
