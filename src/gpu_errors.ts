/**
 * The WebGPU device's uncaptured errors. Dawn reports an invalid shader or command buffer by an event and
 * skips that work; tfjs carries on with wrong numbers. backend.ts starts the watch; the training step calls
 * checkGpuErrors after its read so such a step fails loudly instead. No Node import: the step uses it.
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
