/**
 * A worker's experts: weights of the slots it hosts (per layer), their gradients summed over calls
 * until step(), activations kept from forward for backward (only the input rows with `recompute`: the
 * FFN's intermediates are computed again in backward, by the same ops, so the gradients are the same), and
 * its own AdamW.
 * Variables are named `l{layer}.e{expert}.w1|w2|w3`, the keys of getOpt/setOpt.
 */
import * as tf from '@tensorflow/tfjs';
import { AdamW, type AdamWState } from '../optim/adamw.ts';
import type { Activation } from '../moe/experts.ts';
import { backwardBlock, disposeSaved, forwardBlock, type ExpertParams, type SavedBlock } from './expert_math.ts';
import type { AdamWHyper, ExpertArrays } from './protocol.ts';
import { slotName } from './stacking.ts';
import { addRelNoise } from '../ops/rel_noise.ts';

type Which = 'w1' | 'w2' | 'w3';

interface SlotState {
  expert: number;
  primary: boolean;
  p: Record<Which, tf.Variable | null>;
  g: Record<Which, tf.Variable | null>;
}

interface LayerState {
  D: number;
  H: number;
  slots: SlotState[];
}

/** Activations of one chunk: per non-empty slot, its saved block, or only its input rows under recompute. */
interface SavedChunk {
  blocks: { slot: number; saved: SavedBlock | null; input: tf.Tensor2D | null }[];
}

const WHICH: Which[] = ['w1', 'w2', 'w3'];

export class ExpertStore {
  private layers: LayerState[];
  private readonly activation: Activation;
  private readonly recompute: boolean;
  private readonly opt: AdamW;
  /** call id → chunk → activations. */
  private saved = new Map<number, SavedChunk[]>();

  constructor(init: { dim: number[]; hidden: number[]; activation: Activation; adamw: AdamWHyper; experts: ExpertArrays[][]; slotExperts: number[]; primary: boolean[]; recompute?: boolean }) {
    this.activation = init.activation;
    this.recompute = init.recompute ?? false;
    this.layers = init.experts.map((slots, l) => {
      const D = init.dim[l], H = init.hidden[l];
      const shape: Record<Which, [number, number]> = { w1: [D, H], w2: [H, D], w3: [D, H] };
      return {
        D, H,
        slots: slots.map((w, s) => {
          const e = init.slotExperts[s];
          const mk = (k: Which, grad: boolean) => {
            const a = w[k];
            if (!a) return null;
            if (a.length !== shape[k][0] * shape[k][1]) throw new Error(`worker: layer ${l} expert ${e} ${k} has ${a.length} values, expected ${shape[k].join('×')}`);
            // in a tidy: a variable shares its initial tensor's data, and that tensor would outlive dispose()
            return tf.tidy(() => (grad ? tf.variable(tf.zeros(shape[k]), false) : tf.variable(tf.tensor2d(a, shape[k]), true, slotName(l, e, k))));
          };
          return { expert: e, primary: init.primary[s], p: { w1: mk('w1', false), w2: mk('w2', false), w3: mk('w3', false) }, g: { w1: mk('w1', true), w2: mk('w2', true), w3: mk('w3', true) } };
        }),
      };
    });
    const params = this.layers.flatMap((L) => L.slots.flatMap((s) => WHICH.map((k) => s.p[k]).filter((v): v is tf.Variable => v !== null)));
    this.opt = new AdamW(params, init.adamw);
  }

  private layer(l: number): LayerState {
    const L = this.layers[l];
    if (!L) throw new Error(`worker: no layer ${l} (has ${this.layers.length})`);
    return L;
  }

  /** Model width D of layer l. */
  dim(l: number): number {
    return this.layer(l).D;
  }

  private params(s: SlotState): ExpertParams {
    return { w1: s.p.w1! as tf.Tensor as tf.Tensor2D, w2: s.p.w2! as tf.Tensor as tf.Tensor2D, w3: s.p.w3 as tf.Tensor as tf.Tensor2D | null };
  }

  /** ys of one chunk: x [n, D] grouped by slot (slotCounts) → y [n, D]; keeps activations when `save`. */
  forward(l: number, call: number, chunk: number, x: Float32Array, slotCounts: Int32Array, save: boolean): Float32Array {
    const L = this.layer(l);
    const n = x.length / L.D;
    const blocks: SavedChunk['blocks'] = [];
    const ys: tf.Tensor2D[] = [];
    const xt = tf.tensor2d(x, [n, L.D]);
    const parts = n === 0 ? [] : tf.split(xt, Array.from(slotCounts).filter((c) => c > 0)) as tf.Tensor2D[];
    xt.dispose();
    let b = 0;
    slotCounts.forEach((count, s) => {
      if (count === 0) return;
      const x = parts[b++];
      const keepInput = save && this.recompute;
      const { y, saved } = forwardBlock(keepInput ? tf.clone(x) : x, this.params(L.slots[s]), this.activation, save && !this.recompute);
      ys.push(y);
      if (keepInput) blocks.push({ slot: s, saved: null, input: x });
      else if (saved) blocks.push({ slot: s, saved, input: null });
    });
    if (save) {
      if (!this.saved.has(call)) this.saved.set(call, []);
      this.saved.get(call)![chunk] = { blocks };
    }
    return readAndDispose(ys, n * L.D);
  }

  /** dxs of one chunk from dy [n, D]; adds the chunk's weight gradients to the accumulators. */
  backward(l: number, call: number, chunk: number, dy: Float32Array): Float32Array {
    const L = this.layer(l);
    const rec = this.saved.get(call)?.[chunk];
    if (!rec) throw new Error(`worker: no saved activations for call ${call} chunk ${chunk} (backward twice, or forward not under a gradient tape?)`);
    const n = dy.length / L.D;
    const dyt = tf.tensor2d(dy, [n, L.D]);
    const sizes = rec.blocks.map((bk) => (bk.saved?.x ?? bk.input!).shape[0]);
    const parts = n === 0 ? [] : tf.split(dyt, sizes) as tf.Tensor2D[];
    dyt.dispose();
    const dxs: tf.Tensor2D[] = [];
    rec.blocks.forEach((bk, i) => {
      const s = L.slots[bk.slot];
      let saved = bk.saved;
      if (!saved) { // recompute: the forward's intermediates again, from the kept input rows
        const again = forwardBlock(bk.input!, this.params(s), this.activation, true);
        again.y.dispose();
        saved = again.saved!;
      }
      const g = backwardBlock(saved, parts[i], this.params(s), this.activation);
      parts[i].dispose();
      tf.tidy(() => {
        s.g.w1!.assign(tf.add(s.g.w1!, g.dw1));
        s.g.w2!.assign(tf.add(s.g.w2!, g.dw2));
        if (g.dw3) s.g.w3!.assign(tf.add(s.g.w3!, g.dw3));
      });
      for (const t of [g.dw1, g.dw2, g.dw3]) t?.dispose();
      disposeSaved(saved);
      dxs.push(g.dx);
    });
    const chunks = this.saved.get(call)!;
    delete chunks[chunk];
    if (chunks.every((x) => x === undefined)) this.saved.delete(call);
    return readAndDispose(dxs, n * L.D);
  }

  /** Σ ‖g‖² over primary replicas (a replicated expert counts once). */
  normSq(): number {
    let sum = 0;
    for (const L of this.layers) for (const s of L.slots) {
      if (!s.primary) continue;
      for (const k of WHICH) if (s.g[k]) sum += tf.tidy(() => tf.sum(tf.square(s.g[k]!)).dataSync()[0]);
    }
    return sum;
  }

  /** Floats of activations kept for backward (the input rows only under recompute). */
  keptFloats(): number {
    let n = 0;
    for (const chunks of this.saved.values()) for (const ch of chunks) for (const b of ch?.blocks ?? []) {
      if (b.input) n += b.input.size;
      if (b.saved) for (const t of [b.saved.x, b.saved.h, b.saved.h3, b.saved.a]) n += t?.size ?? 0;
    }
    return n;
  }

  /** Per slot of layer l: Σ g² and Σ |g| over its w1, w2, w3 gradients, and their entry count. */
  gradStats(l: number): { sumSq: number; sumAbs: number; size: number }[] {
    return this.layer(l).slots.map((s) => {
      let sumSq = 0, sumAbs = 0, size = 0;
      for (const k of WHICH) {
        const g = s.g[k];
        if (!g) continue;
        const [sq, ab] = tf.tidy(() => [tf.sum(tf.square(g)), tf.sum(tf.abs(g))]);
        sumSq += sq.dataSync()[0];
        sumAbs += ab.dataSync()[0];
        size += g.size;
        tf.dispose([sq, ab]);
      }
      return { sumSq, sumAbs, size };
    });
  }

  /** g ← s[expert]·g for every slot of layer l (s indexed by expert id). */
  scaleExperts(l: number, factors: number[]): void {
    for (const s of this.layer(l).slots) {
      const f = factors[s.expert];
      if (f === 1) continue;
      for (const k of WHICH) {
        const g = s.g[k];
        if (g) tf.tidy(() => g.assign(tf.mul(g, f)));
      }
    }
  }

  /** Weights of expert e of layer l (its first slot here). */
  getExpert(l: number, e: number): ExpertArrays {
    const s = this.layer(l).slots.find((x) => x.expert === e);
    if (!s) throw new Error(`worker: layer ${l} hosts no slot of expert ${e}`);
    return toArrays(s.p);
  }

  /** Every slot of expert e in layer l ← w + noise·ρ·rms(w) per matrix (noise null: a plain copy). */
  setExpert(l: number, e: number, w: ExpertArrays, noise: ExpertArrays | null, rho: number): void {
    for (const s of this.layer(l).slots) {
      if (s.expert !== e) continue;
      for (const k of WHICH) {
        const t = s.p[k];
        if (!t) continue;
        const src = w[k];
        if (!src || src.length !== t.size) throw new Error(`worker: ${k} needs ${t.size} values, got ${src?.length ?? 'none'}`);
        tf.tidy(() => {
          const x = tf.tensor(src, t.shape);
          t.assign(noise ? addRelNoise(x, noise[k]!, rho) : x);
        });
      }
    }
  }

  /** g ← s·g for every slot. */
  scale(factor: number): void {
    for (const L of this.layers) for (const s of L.slots) for (const k of WHICH) {
      const g = s.g[k];
      if (g) tf.tidy(() => g.assign(tf.mul(g, factor)));
    }
  }

  /**
   * AdamW on every slot with the accumulated gradients, then zero them and drop kept activations. Slots of
   * `frozen[l]` experts get no gradient, so AdamW holds their weights and moments (sparse accumulation).
   */
  step(lr: number, frozen: number[][] = []): void {
    const grads: Record<string, tf.Tensor> = {};
    this.layers.forEach((L, l) => {
      for (const s of L.slots) {
        if (frozen[l]?.includes(s.expert)) continue;
        for (const k of WHICH) if (s.p[k]) grads[s.p[k]!.name] = s.g[k]!;
      }
    });
    this.opt.step(grads, lr);
    tf.tidy(() => { for (const L of this.layers) for (const s of L.slots) for (const k of WHICH) s.g[k]?.assign(tf.zerosLike(s.g[k]!)); });
    this.releaseSaved();
  }

  releaseSaved(): void {
    for (const chunks of this.saved.values()) for (const ch of chunks) ch?.blocks.forEach((b) => { if (b.saved) disposeSaved(b.saved); b.input?.dispose(); });
    this.saved.clear();
  }

  getGrads(l: number): ExpertArrays[] {
    return this.layer(l).slots.map((s) => toArrays(s.g));
  }

  /** Replaces gradients of slots given (null: keep). */
  setGrads(l: number, grads: (ExpertArrays | null)[]): void {
    this.layer(l).slots.forEach((s, i) => { if (grads[i]) assignArrays(s.g, grads[i]!); });
  }

  getWeights(l: number): ExpertArrays[] {
    return this.layer(l).slots.map((s) => toArrays(s.p));
  }

  setWeights(l: number, experts: ExpertArrays[]): void {
    const L = this.layer(l);
    if (experts.length !== L.slots.length) throw new Error(`worker: setWeights got ${experts.length} experts for ${L.slots.length} slots`);
    L.slots.forEach((s, i) => assignArrays(s.p, experts[i]));
  }

  getOpt(): AdamWState {
    return this.opt.getStateSync();
  }

  setOpt(state: AdamWState): void {
    this.opt.setState(state);
  }

  dispose(): void {
    this.releaseSaved();
    this.opt.dispose();
    for (const L of this.layers) for (const s of L.slots) for (const k of WHICH) { s.p[k]?.dispose(); s.g[k]?.dispose(); }
    this.layers = [];
  }
}

/** Concatenates row blocks and reads them out (one sync), disposing the blocks. */
function readAndDispose(blocks: tf.Tensor2D[], size: number): Float32Array {
  if (blocks.length === 0) return new Float32Array(size);
  const all = blocks.length === 1 ? blocks[0] : tf.concat(blocks, 0);
  const out = (all.dataSync() as Float32Array).slice(); // slice: dataSync may return the backend's own buffer
  all.dispose();
  for (const b of blocks) b.dispose();
  return out;
}

function toArrays(v: Record<Which, tf.Variable | null>): ExpertArrays {
  const read = (t: tf.Variable) => (t.dataSync() as Float32Array).slice();
  return { w1: read(v.w1!), w2: read(v.w2!), w3: v.w3 ? read(v.w3) : null };
}

function assignArrays(v: Record<Which, tf.Variable | null>, a: ExpertArrays): void {
  for (const k of WHICH) {
    const t = v[k];
    if (!t) continue;
    const src = a[k];
    if (!src || src.length !== t.size) throw new Error(`worker: ${k} needs ${t.size} values, got ${src?.length ?? 'none'}`);
    tf.tidy(() => t.assign(tf.tensor(src, t.shape)));
  }
}
