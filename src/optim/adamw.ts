/**
 * AdamW (Loshchilov & Hutter 2019, decoupled weight decay) in PyTorch's convention, decay scaled by lr:
 *   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,  m̂ = m/(1−β1^t),  v̂ = v/(1−β2^t)
 *   θ ← θ − lr·(m̂/(√v̂ + ε) + λ·θ)        (λ·θ only where decay(name, shape) is true)
 * A class because it owns state (m, v, t); getState/setState let a checkpoint restore it bit for bit.
 * Everything runs on the device, nothing is read back: the update of one tensor is adamwUpdate, one fused kernel
 * on wasm (src/kernels/wasm_fused.ts, the chain's float32 arithmetic bit for bit) and a chain of tfjs ops elsewhere.
 */
import * as tf from '@tensorflow/tfjs';
import { ADAMW_KERNEL, fusedKernelActive } from '../kernels/wasm_fused.ts';

export interface AdamWOptions {
  /** β1 (default 0.9). */
  beta1?: number;
  /** β2 (default 0.999, PyTorch's; LM recipes often use 0.95). */
  beta2?: number;
  /** ε added to √v̂ (default 1e-8). */
  eps?: number;
  /** λ, decoupled weight decay (default 0.01, PyTorch's). */
  weightDecay?: number;
  /** Which parameters decay (default: defaultDecay). */
  decay?: (name: string, shape: readonly number[]) => boolean;
}

/** Optimizer state for a checkpoint: t (steps taken) and the moments per parameter name. */
export interface AdamWState {
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

/** Decay matrices and embeddings (rank ≥ 2), not norm gains or biases (GPT-2/nanoGPT practice). */
export function defaultDecay(name: string, shape: readonly number[]): boolean {
  return shape.length >= 2 && !/norm|bias/i.test(name);
}

interface Slot {
  param: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  decay: boolean;
}

/** The constants of one AdamW update (bias corrections bc = 1 − β^t for this step's t). */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** λ for this tensor (0 where it does not decay). */
  weightDecay: number;
  bc1: number;
  bc2: number;
}

/**
 * One AdamW update of one tensor: m' = β1·m + (1−β1)·g, v' = β2·v + (1−β2)·g²,
 * θ' = θ − lr·(m'/bc1 / (√(v'/bc2) + ε) + λ·θ). Returns new tensors; the caller assigns them.
 */
export function adamwUpdate(theta: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, h: AdamWHyper): { theta: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  if (g.dtype === 'float32' && fusedKernelActive(ADAMW_KERNEL)) {
    const [t2, m2, v2] = tf.engine().runKernel(ADAMW_KERNEL, { theta, m, v, g }, { ...h }) as tf.Tensor[];
    return { theta: t2, m: m2, v: v2 };
  }
  return adamwUpdateOps(theta, m, v, g, h);
}

/** adamwUpdate as a chain of tfjs ops (every backend; the reference the fused wasm kernel is tested against). */
export function adamwUpdateOps(theta: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, h: AdamWHyper): { theta: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  return tf.tidy(() => {
    const gf = g.dtype === 'float32' ? g : tf.cast(g, 'float32');
    const m2 = tf.add(tf.mul(m, h.beta1), tf.mul(gf, 1 - h.beta1)); // same shape as θ
    const v2 = tf.add(tf.mul(v, h.beta2), tf.mul(tf.square(gf), 1 - h.beta2));
    let upd = tf.div(tf.div(m2, h.bc1), tf.add(tf.sqrt(tf.div(v2, h.bc2)), h.eps)); // m̂/(√v̂+ε)
    if (h.weightDecay > 0) upd = tf.add(upd, tf.mul(theta, h.weightDecay)); // + λ·θ (old θ)
    return { theta: tf.sub(theta, tf.mul(upd, h.lr)), m: m2, v: v2 };
  });
}

function checkIn(x: number, name: string, lo: number, hi: number, hiOpen: boolean): number {
  if (!Number.isFinite(x) || x < lo || (hiOpen ? x >= hi : x > hi)) {
    throw new Error(`AdamW: ${name} must be in [${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${x}`);
  }
  return x;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private slots = new Map<string, Slot>();
  private t = 0;
  private disposed = false;

  /** Params are keyed by tf.Variable.name (the keys tf.variableGrads gives), which must be unique. */
  constructor(params: readonly tf.Variable[], opts: AdamWOptions = {}) {
    this.beta1 = checkIn(opts.beta1 ?? 0.9, 'beta1', 0, 1, true);
    this.beta2 = checkIn(opts.beta2 ?? 0.999, 'beta2', 0, 1, true);
    this.eps = checkIn(opts.eps ?? 1e-8, 'eps', 0, Infinity, false);
    this.weightDecay = checkIn(opts.weightDecay ?? 0.01, 'weightDecay', 0, Infinity, false);
    const decay = opts.decay ?? defaultDecay;
    if (!Array.isArray(params) || params.length === 0) throw new Error(`AdamW: params must be a non-empty array of tf.Variable, got ${String(params)}`);
    for (const p of params) {
      if (!(p instanceof tf.Variable)) throw new Error(`AdamW: every param must be a tf.Variable, got ${String(p)}`);
      if (p.dtype !== 'float32') throw new Error(`AdamW: param ${p.name} must be float32, got ${p.dtype}`);
      if (this.slots.has(p.name)) throw new Error(`AdamW: two params share the name ${p.name}`);
      // Unnamed moment variables: tfjs names are global, and two optimizers may coexist (tests, eval).
      this.slots.set(p.name, {
        param: p,
        m: tf.tidy(() => tf.variable(tf.zerosLike(p), false)), // tidy frees the zeros; the variable keeps its data
        v: tf.tidy(() => tf.variable(tf.zerosLike(p), false)),
        decay: decay(p.name, p.shape),
      });
    }
  }

  /** Steps taken so far (t of the last update). */
  get stepCount(): number {
    return this.t;
  }

  /** Parameter names, in construction order. */
  names(): string[] {
    return [...this.slots.keys()];
  }

  /** Whether the named parameter gets weight decay. */
  decays(name: string): boolean {
    const s = this.slots.get(name);
    if (s === undefined) throw new Error(`AdamW: no param named ${name}`);
    return s.decay;
  }

  /**
   * One update with step size lr (t ← t + 1). Params without a gradient in grads are left alone (moments too),
   * like PyTorch's grad = None; a gradient for an unknown name or of the wrong shape is an error.
   * `masks` (optional, per param name, broadcastable to the param, 1 = update, 0 = hold) freezes slices
   * entirely — weights and both moments — as sparse expert accumulation needs.
   */
  step(grads: Record<string, tf.Tensor>, lr: number, masks: Record<string, tf.Tensor> = {}): void {
    this.checkLive();
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`AdamW.step: lr must be a finite number ≥ 0, got ${lr}`);
    for (const [name, g] of Object.entries(grads)) {
      const s = this.slots.get(name);
      if (s === undefined) throw new Error(`AdamW.step: gradient for unknown param ${name} (known: ${this.names().join(', ')})`);
      if (!tf.util.arraysEqual(g.shape, s.param.shape)) {
        throw new Error(`AdamW.step: gradient for ${name} has shape [${g.shape}], param has [${s.param.shape}]`);
      }
    }
    this.t += 1;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    tf.tidy(() => {
      for (const [name, s] of this.slots) {
        const g = grads[name];
        if (g === undefined) continue;
        const next = adamwUpdate(s.param, s.m, s.v, g, { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: s.decay ? this.weightDecay : 0, bc1, bc2 });
        const hold = masks[name];
        const keep = (nx: tf.Tensor, old: tf.Tensor) => (hold ? tf.add(old, tf.mul(hold, tf.sub(nx, old))) : nx);
        s.param.assign(keep(next.theta, s.param));
        s.m.assign(keep(next.m, s.m));
        s.v.assign(keep(next.v, s.v));
      }
    });
  }

  /** Copies of t and the moments, for a checkpoint (read with `await data()`). */
  async getState(): Promise<AdamWState> {
    this.checkLive();
    const t = this.t;
    const names = [...this.slots.keys()];
    const read = await Promise.all(names.flatMap((n) => [this.slots.get(n)!.m.data(), this.slots.get(n)!.v.data()]));
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    // slice(): a backend may hand back its own buffer
    names.forEach((n, i) => { m[n] = (read[2 * i] as Float32Array).slice(); v[n] = (read[2 * i + 1] as Float32Array).slice(); });
    return { step: t, m, v };
  }

  /** getState read synchronously: for expert-parallel workers (wasm / cpu), whose replies are synchronous. */
  getStateSync(): AdamWState {
    this.checkLive();
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const [name, s] of this.slots) {
      m[name] = (s.m.dataSync() as Float32Array).slice();
      v[name] = (s.v.dataSync() as Float32Array).slice();
    }
    return { step: this.t, m, v };
  }

  /** Restores getState()'s output; names and sizes must match this optimizer's params exactly. */
  setState(state: AdamWState): void {
    this.checkLive();
    if (state === null || typeof state !== 'object') throw new Error(`AdamW.setState: state must be an object, got ${String(state)}`);
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`AdamW.setState: step must be an integer ≥ 0, got ${state.step}`);
    for (const key of ['m', 'v'] as const) {
      const rec = state[key];
      if (rec === null || typeof rec !== 'object') throw new Error(`AdamW.setState: ${key} must be a record of Float32Array, got ${String(rec)}`);
      const names = Object.keys(rec);
      const extra = names.filter((n) => !this.slots.has(n));
      const missing = this.names().filter((n) => !(n in rec));
      if (extra.length > 0 || missing.length > 0) {
        throw new Error(`AdamW.setState: ${key} names differ from the params (unknown: [${extra.join(', ')}], missing: [${missing.join(', ')}])`);
      }
      for (const [name, s] of this.slots) {
        const a = rec[name];
        if (!(a instanceof Float32Array) || a.length !== s.param.size) {
          throw new Error(`AdamW.setState: ${key}[${name}] must be a Float32Array of length ${s.param.size}, got ${a instanceof Float32Array ? `length ${a.length}` : Object.prototype.toString.call(a)}`);
        }
      }
    }
    for (const [name, s] of this.slots) {
      tf.tidy(() => {
        s.m.assign(tf.tensor(state.m[name].slice(), s.param.shape, 'float32'));
        s.v.assign(tf.tensor(state.v[name].slice(), s.param.shape, 'float32'));
      });
    }
    this.t = state.step;
  }

  /** Frees the moment variables (not the params, which the model owns). */
  dispose(): void {
    if (this.disposed) return;
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.disposed = true;
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
  }
}
