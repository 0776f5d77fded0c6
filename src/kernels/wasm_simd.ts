/**
 * A small WebAssembly SIMD module that works directly on the tfjs wasm backend's memory (it imports the backend's
 * exported WebAssembly.Memory). Plain JS loops run about 15 ns per element on long elementwise chains with divisions
 * and square roots; f32x4 code does four lanes at once in float32 — the same IEEE operations, in the same order, as
 * the tfjs kernel chains they replace, so the results are theirs bit for bit. Pointers are byte offsets into that
 * memory; each function covers the first ⌊n/4⌋·4 elements and the caller finishes the last n mod 4 in JS. No SIMD
 * in the engine (or no memory to import): simdKernels gives null. The source is wasm_simd.wat; its bytes, assembled
 * by wabt (`npm run build:kernels`), are committed in wasm_simd_bytes.ts, so the runtime and the browser bundle
 * carry no assembler.
 */
import { SIMD_WASM_BASE64 } from './wasm_simd_bytes.ts';

/** The backend's module object, as far as it is used here. */
interface EmscriptenModule { asm?: { memory?: unknown } }

/** The functions of the module (byte pointers; nbytes = 16·⌊n/4⌋). */
export interface SimdKernels {
  /** AdamW: m' = m·β1 + g·c1, v' = v·β2 + g²·c2, θ' = θ − ((m'/bc1)/(√(v'/bc2) + ε) + θ·λ)·lr. */
  adamw(th: number, m: number, v: number, g: number, oth: number, om: number, ov: number, nbytes: number,
    b1: number, c1: number, b2: number, c2: number, bc1: number, bc2: number, eps: number, wd: number, lr: number): void;
  /** SwiGLU forward with s = σ(h) given: y = (h·s)·u. */
  swiglu(h: number, s: number, u: number, y: number, nbytes: number): void;
  /** SwiGLU backward: du = dy·(h·s), dh = (dy·u)·s + ((dy·u)·h)·(s·(1 − s)). */
  swigluGrad(dy: number, h: number, s: number, u: number, dh: number, du: number, nbytes: number): void;
  /** Four lane-wise maxima of |x| (NaN wins), stored as f32x4 at `out`. */
  maxAbs(x: number, out: number, nbytes: number): void;
  /** Σ (x/a)² with the squares in float32 (as tfjs's chain forms them) summed in float64: two f64 lanes at `out`. */
  sumSquares(x: number, out: number, nbytes: number, a: number): void;
  /** Σ (dy·g)·x, the products in float32 and summed in float64: two f64 lanes at `out`. */
  dot3(dy: number, g: number, x: number, out: number, nbytes: number): void;
  /** y = (x·r)·g: one RMSNorm row. */
  scaleRow(x: number, g: number, y: number, nbytes: number, r: number): void;
  /** dx = (dy·g)·r − x·k and dg += (dy·x)·r: one RMSNorm row backward. */
  rmsRowGrad(dy: number, g: number, x: number, dx: number, dg: number, nbytes: number, r: number, k: number): void;
  /** RoPE on one head vector's halves: o1 = x1·c − x2·(σ·s), o2 = x1·(σ·s) + x2·c (σ = ±1). */
  ropeRow(x1: number, x2: number, c: number, s: number, o1: number, o2: number, nbytes: number, sign: number): void;
}

/** The module's bytes (imports env.memory; exports the functions of SimdKernels), assembled from wasm_simd.wat. */
export function simdModuleBytes(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(SIMD_WASM_BASE64), (c) => c.charCodeAt(0));
}

let compiled: WebAssembly.Module | null | undefined;
const instances = new WeakMap<object, SimdKernels>();

/** The SIMD functions bound to the wasm backend's memory, or null where they cannot be had. */
export function simdKernels(backend: unknown): SimdKernels | null {
  const memory = (backend as { wasm?: EmscriptenModule }).wasm?.asm?.memory;
  if (typeof WebAssembly === 'undefined' || !(memory instanceof WebAssembly.Memory)) return null;
  const known = instances.get(memory);
  if (known) return known;
  if (compiled === undefined) {
    try { compiled = new WebAssembly.Module(simdModuleBytes()); } catch { compiled = null; } // an engine without SIMD
  }
  if (compiled === null) return null;
  const k = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as SimdKernels;
  instances.set(memory, k);
  return k;
}
