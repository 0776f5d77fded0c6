/**
 * The WebGPU device's health, checked by the training step after its read (no Node import: the step uses it).
 * - Uncaptured errors: Dawn reports an invalid shader or command buffer (or an allocation that failed) by
 *   an event and skips that work; tfjs carries on with wrong numbers. backend.ts starts the watch;
 *   checkGpuErrors makes such a step fail loudly instead.
 * - The buffer pool: tfjs-webgpu keeps every freed buffer for reuse by exact size and never frees one;
 *   trimGpuPool destroys the free ones once they pass a bound (sizes that vary step to step add up).
 */
import * as tf from '@tensorflow/tfjs';

const gpuErrors: string[] = [];
let watchedDevice: unknown = null;

interface EventDevice { addEventListener?(type: string, f: (e: { error?: { message?: string } }) => void): void }

/** Collects the active webgpu backend's device errors (once per device). */
export function watchGpuErrors(): void {
  const device = (tf.backend() as unknown as { device?: EventDevice }).device;
  if (!device || device === watchedDevice || !device.addEventListener) return;
  watchedDevice = device;
  device.addEventListener('uncapturederror', (e) => { gpuErrors.push(e.error?.message?.split('\n')[0] ?? 'unknown WebGPU error'); });
}

/** Throws if the WebGPU device reported an error since the last call (its work was skipped: wrong numbers). */
export function checkGpuErrors(): void {
  if (gpuErrors.length === 0) return;
  const all = gpuErrors.splice(0);
  throw new Error(`WebGPU reported ${all.length} error(s); the first: ${all[0]}`);
}

interface BufferPool {
  freeBuffers: Map<string, { size: number; destroy(): void }[]>;
  numFreeBuffers: number;
  numBytesUsed: number;
  numBytesAllocated: number;
}

/** Destroys tfjs-webgpu's free buffers when they hold more than maxFreeBytes (default 4 GiB); returns bytes freed. */
export function trimGpuPool(maxFreeBytes = 4 * 2 ** 30): number {
  if (tf.getBackend() !== 'webgpu') return 0;
  const pool = (tf.backend() as unknown as { bufferManager?: BufferPool }).bufferManager;
  if (!pool?.freeBuffers || pool.numBytesAllocated - pool.numBytesUsed <= maxFreeBytes) return 0;
  let freed = 0;
  for (const list of pool.freeBuffers.values()) {
    for (const b of list) { freed += b.size; b.destroy(); }
    list.length = 0; // keys stay: tfjs's releaseBuffer skips pooling once the map is empty
  }
  pool.numFreeBuffers = 0;
  pool.numBytesAllocated -= freed;
  return freed;
}
