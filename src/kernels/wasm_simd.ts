/**
 * A small WebAssembly SIMD module, emitted here as bytes, that works directly on the tfjs wasm backend's memory
 * (it imports the backend's exported WebAssembly.Memory). Plain JS loops run about 15 ns per element on long
 * elementwise chains with divisions and square roots; f32x4 code does four lanes at once in float32 — the same
 * IEEE operations, in the same order, as the tfjs kernel chains they replace, so the results are theirs bit for
 * bit. Pointers are byte offsets into that memory; each function covers the first ⌊n/4⌋·4 elements and the
 * caller finishes the last n mod 4 in JS. No SIMD in the engine (or no memory to import): simdKernels gives null.
 */

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

// ---- a minimal emitter: the opcodes used below (WebAssembly core spec 2.0, SIMD proposal numbering) ----
const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
const uleb = (n: number): number[] => { const o: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
const sleb = (n: number): number[] => { const o: number[] = []; for (;;) { const b = n & 0x7f; n >>= 7; if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) { o.push(b); return o; } o.push(b | 0x80); } };
const str = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const op = {
  get: (i: number) => [0x20, ...uleb(i)], set: (i: number) => [0x21, ...uleb(i)],
  i32: (n: number) => [0x41, ...sleb(n)], f32: (x: number) => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)],
  add: [0x6a], geU: [0x4f], br: (d: number) => [0x0c, d], brIf: (d: number) => [0x0d, d], end: [0x0b],
  block: [0x02, 0x40], loop: [0x03, 0x40],
  load: [...simd(0x00), 0, 0], store: [...simd(0x0b), 0, 0], splat: simd(0x13),
  sqrt: simd(0xe3), fadd: simd(0xe4), fsub: simd(0xe5), fmul: simd(0xe6), fdiv: simd(0xe7),
  fabs: simd(0xe0), fmax: simd(0xe9), dadd: simd(0xf0), promoteLow: simd(0x5f),
  highToLow: [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15], // i8x16.shuffle: lanes 2, 3 → 0, 1
};

/**
 * One function: `ptrs` i32 byte pointers, then nbytes (i32), then `scalars` f32 (each splat into a v128 local),
 * then `temps` v128 locals; `body(p)` is the loop body for byte offset p = local `p` (advanced by 16 after it).
 */
function fn(ptrs: number, scalars: number, temps: number, body: (L: { ptr: (k: number) => number[]; sc: (k: number) => number; t: (k: number) => number }) => number[], epilogue: (t: (k: number) => number) => number[] = () => []) {
  const nb = ptrs, p = ptrs + 1 + scalars; // locals: params..., p (i32), splats (v128), temps (v128)
  const sc = (k: number) => p + 1 + k, t = (k: number) => p + 1 + scalars + k;
  const ptr = (k: number) => [...op.get(k), ...op.get(p), ...op.add]; // address of element block p in array k
  const code: number[] = [];
  for (let k = 0; k < scalars; k++) code.push(...op.get(ptrs + 1 + k), ...op.splat, ...op.set(sc(k)));
  code.push(...op.block, ...op.loop, ...op.get(p), ...op.get(nb), ...op.geU, ...op.brIf(1));
  code.push(...body({ ptr, sc, t }));
  code.push(...op.get(p), ...op.i32(16), ...op.add, ...op.set(p), ...op.br(0), ...op.end, ...op.end, ...epilogue(t), ...op.end);
  const locals = vec([[1, I32], [scalars + temps, V128]]);
  const full = [...locals, ...code];
  return { type: [0x60, ...vec([...Array(ptrs + 1).fill([I32]), ...Array(scalars).fill([F32])]), 0], body: [...uleb(full.length), ...full] };
}

const ld = (a: number[]) => [...a, ...op.load];

/** The module's bytes: imports env.memory, exports adamw, swiglu, swigluGrad. */
export function simdModuleBytes(): Uint8Array<ArrayBuffer> {
  const adamw = fn(7, 9, 4, ({ ptr, sc, t }) => {
    const [B1, C1, B2, C2, BC1, BC2, EPS, WD, LR] = [0, 1, 2, 3, 4, 5, 6, 7, 8].map(sc);
    const [G, M, V, T] = [0, 1, 2, 3].map(t);
    return [
      ...ld(ptr(3)), ...op.set(G),
      ...ld(ptr(1)), ...op.get(B1), ...op.fmul, ...op.get(G), ...op.get(C1), ...op.fmul, ...op.fadd, ...op.set(M),
      ...ptr(5), ...op.get(M), ...op.store,
      ...ld(ptr(2)), ...op.get(B2), ...op.fmul, ...op.get(G), ...op.get(G), ...op.fmul, ...op.get(C2), ...op.fmul, ...op.fadd, ...op.set(V),
      ...ptr(6), ...op.get(V), ...op.store,
      ...ld(ptr(0)), ...op.set(T),
      ...ptr(4), ...op.get(T),
      ...op.get(M), ...op.get(BC1), ...op.fdiv,
      ...op.get(V), ...op.get(BC2), ...op.fdiv, ...op.sqrt, ...op.get(EPS), ...op.fadd, ...op.fdiv,
      ...op.get(T), ...op.get(WD), ...op.fmul, ...op.fadd, ...op.get(LR), ...op.fmul,
      ...op.fsub, ...op.store,
    ];
  });
  // swiglu(h, s, u, y): y = (h·s)·u
  const swiglu = fn(4, 0, 0, ({ ptr }) => [...ptr(3), ...ld(ptr(0)), ...ld(ptr(1)), ...op.fmul, ...ld(ptr(2)), ...op.fmul, ...op.store]);
  // swigluGrad(dy, h, s, u, dh, du)
  const swigluGrad = fn(6, 0, 4, ({ ptr, t }) => {
    const [DY, H, S, U] = [0, 1, 2, 3].map(t);
    return [
      ...ld(ptr(0)), ...op.set(DY), ...ld(ptr(1)), ...op.set(H), ...ld(ptr(2)), ...op.set(S),
      ...op.get(DY), ...ld(ptr(3)), ...op.fmul, ...op.set(U), // U = dy·u
      ...ptr(5), ...op.get(DY), ...op.get(H), ...op.get(S), ...op.fmul, ...op.fmul, ...op.store,
      ...ptr(4), ...op.get(U), ...op.get(S), ...op.fmul,
      ...op.get(U), ...op.get(H), ...op.fmul, ...op.get(S), ...op.f32(1), ...op.splat, ...op.get(S), ...op.fsub, ...op.fmul, ...op.fmul,
      ...op.fadd, ...op.store,
    ];
  });
  // maxAbs(x, out): M = max(M, |x|) lane-wise; M starts at 0 (locals start zeroed)
  const maxAbs = fn(2, 0, 1, ({ ptr, t }) => [...op.get(t(0)), ...ld(ptr(0)), ...op.fabs, ...op.fmax, ...op.set(t(0))],
    (t) => [...op.get(1), ...op.get(t(0)), ...op.store]);
  // sumSquares(x, out, a): V = (x/a)² in f32x4, its four lanes added to two f64x2 sums
  const sumSquares = fn(2, 1, 3, ({ ptr, sc, t }) => [
    ...ld(ptr(0)), ...op.get(sc(0)), ...op.fdiv, ...op.set(t(0)), ...op.get(t(0)), ...op.get(t(0)), ...op.fmul, ...op.set(t(0)),
    ...op.get(t(1)), ...op.get(t(0)), ...op.promoteLow, ...op.dadd, ...op.set(t(1)),
    ...op.get(t(2)), ...op.get(t(0)), ...op.get(t(0)), ...op.highToLow, ...op.promoteLow, ...op.dadd, ...op.set(t(2)),
  ], (t) => [...op.get(1), ...op.get(t(1)), ...op.get(t(2)), ...op.dadd, ...op.store]);
  // the four f32 lanes of temp 0 added to the f64x2 sums in temps 1 and 2
  const accumulate = (t: (k: number) => number) => [
    ...op.get(t(1)), ...op.get(t(0)), ...op.promoteLow, ...op.dadd, ...op.set(t(1)),
    ...op.get(t(2)), ...op.get(t(0)), ...op.get(t(0)), ...op.highToLow, ...op.promoteLow, ...op.dadd, ...op.set(t(2)),
  ];
  const dot3 = fn(4, 0, 3, ({ ptr, t }) => [...ld(ptr(0)), ...ld(ptr(1)), ...op.fmul, ...ld(ptr(2)), ...op.fmul, ...op.set(t(0)), ...accumulate(t)],
    (t) => [...op.get(3), ...op.get(t(1)), ...op.get(t(2)), ...op.dadd, ...op.store]);
  const scaleRow = fn(3, 1, 0, ({ ptr, sc }) => [...ptr(2), ...ld(ptr(0)), ...op.get(sc(0)), ...op.fmul, ...ld(ptr(1)), ...op.fmul, ...op.store]);
  const rmsRowGrad = fn(5, 2, 0, ({ ptr, sc }) => [
    ...ptr(3), ...ld(ptr(0)), ...ld(ptr(1)), ...op.fmul, ...op.get(sc(0)), ...op.fmul, ...ld(ptr(2)), ...op.get(sc(1)), ...op.fmul, ...op.fsub, ...op.store,
    ...ptr(4), ...ld(ptr(4)), ...ld(ptr(0)), ...ld(ptr(2)), ...op.fmul, ...op.get(sc(0)), ...op.fmul, ...op.fadd, ...op.store,
  ]);
  const ropeRow = fn(6, 1, 4, ({ ptr, sc, t }) => {
    const [X1, X2, C, S] = [0, 1, 2, 3].map(t);
    return [
      ...ld(ptr(0)), ...op.set(X1), ...ld(ptr(1)), ...op.set(X2), ...ld(ptr(2)), ...op.set(C), ...ld(ptr(3)), ...op.get(sc(0)), ...op.fmul, ...op.set(S),
      ...ptr(4), ...op.get(X1), ...op.get(C), ...op.fmul, ...op.get(X2), ...op.get(S), ...op.fmul, ...op.fsub, ...op.store,
      ...ptr(5), ...op.get(X1), ...op.get(S), ...op.fmul, ...op.get(X2), ...op.get(C), ...op.fmul, ...op.fadd, ...op.store,
    ];
  });
  const fns = [adamw, swiglu, swigluGrad, maxAbs, sumSquares, dot3, scaleRow, rmsRowGrad, ropeRow];
  const names = ['adamw', 'swiglu', 'swigluGrad', 'maxAbs', 'sumSquares', 'dot3', 'scaleRow', 'rmsRowGrad', 'ropeRow'];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(fns.map((f) => f.type))),
    ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec(fns.map((_, i) => uleb(i)))),
    ...section(7, vec(names.map((n, i) => [...str(n), 0x00, ...uleb(i)]))),
    ...section(10, vec(fns.map((f) => f.body))),
  ]);
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
