/**
 * The playground's training worker: the CLI's Trainer (src/train/step.ts) on data held in memory, one step at
 * a time, posting each step's metrics.jsonl record and, every few steps, how the sample sentence is routed.
 * tfjs runs on WebGPU where the browser gives an adapter (or where the page forces it), else on its wasm backend,
 * the wasm binaries handed over as blob URLs so the page needs no network.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { stringify } from 'yaml';
import { initBackend } from '../backend.ts';
import { crossChecks } from '../config/checks.ts';
import { scoped } from '../ops/async_grads.ts';
import { FieldsSchema, type Config } from '../config/schema.ts';
import { stepRecord } from '../train/record.ts';
import { learningRateAt, Trainer } from '../train/step.ts';
import { playgroundData, type PlaygroundData } from './data.ts';
import { pickBackend, webgpuMissing, type BackendChoice, type GpuNavigator } from './backend_choice.ts';
import type { FromWorker, LayerProbe, Probe, ToWorker } from './protocol.ts';
import { applySets, settingsProblems, settingsToConfig, type Settings } from './settings.ts';

/** Inlined by the build (build.ts, an esbuild define): the nlp-corpus slice and tfjs's wasm binaries (base64). */
declare const PLAYGROUND_ASSETS: { CORPUS_TRAIN: string; CORPUS_VAL: string; WASM_PLAIN: string; WASM_SIMD: string };
const { CORPUS_TRAIN, CORPUS_VAL, WASM_PLAIN, WASM_SIMD } = PLAYGROUND_ASSETS;

/** The live run's schedule length: lr is constant after warmup, so this only has to exceed any session. */
const LIVE_STEPS = 1_000_000;
/** The sample sentence is routed again every this many steps (and when training pauses). */
const PROBE_EVERY = 5;

/** The reset the worker's messages belong to. */
let gen = 0;
const send = (m: DistributiveOmit<FromWorker, 'gen'>) => (self as unknown as Worker).postMessage({ ...m, gen });
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

let trainer: Trainer | null = null;
let cfg: Config | null = null;
let data: PlaygroundData | null = null;
let running = false;
let budget = 0;
let looping = false;
/** Resolves when the step loop has stopped; resets wait for it (on WebGPU a step's reads yield to messages). */
let loopDone: Promise<void> = Promise.resolve();
/** Resets asked for and not yet done: the loop stops at the next step boundary while there are any. */
let resetsPending = 0;
/** The backend this worker trains on: chosen once, at its first reset (the page starts new workers to change it). */
let backendReady: Promise<{ backend: 'webgpu' | 'wasm'; label: string; note: string }> | null = null;

function blobUrl(b64: string): string {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return URL.createObjectURL(new Blob([bytes], { type: 'application/wasm' }));
}

/** The backend `choice` asks for (backend_choice.ts) started: WebGPU, or wasm without threads (a file:// page is not cross-origin isolated). */
async function startBackend(choice: BackendChoice): Promise<{ backend: 'webgpu' | 'wasm'; label: string; note: string }> {
  const picked = pickBackend(choice, choice === 'wasm' ? null : await webgpuMissing(navigator as GpuNavigator));
  if (picked.backend === 'webgpu') {
    if ((await initBackend('webgpu', { quiet: true })) === 'webgpu') return { ...picked, label: 'webgpu' };
    if (choice === 'webgpu') throw new Error('backend webgpu was asked for, but tfjs could not start it; choose auto or wasm');
    picked.note = 'no WebGPU: tfjs could not start it';
  }
  const simd = blobUrl(WASM_SIMD);
  setWasmPaths({ 'tfjs-backend-wasm.wasm': blobUrl(WASM_PLAIN), 'tfjs-backend-wasm-simd.wasm': simd, 'tfjs-backend-wasm-threaded-simd.wasm': simd });
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  const used = await initBackend('wasm', { quiet: true });
  const simdOn = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return { backend: 'wasm', label: `${used}${simdOn ? ' (SIMD)' : ''}`, note: picked.note };
}

/**
 * Settings (+ `--set`-style overrides from the page's URL) → validated Config on `backend`: the field and
 * cross-field rules of the CLI's config, so what that backend refuses (config/checks.ts) is the CLI's message.
 */
function configOf(s: Settings, steps: number, backend: 'webgpu' | 'wasm', overrides: readonly string[]): Config {
  const problems = settingsProblems(s);
  if (problems.length) throw new Error(problems.join('; '));
  const obj = applySets({ ...settingsToConfig(s, steps), backend }, overrides);
  const parsed = FieldsSchema.safeParse(obj);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  const cross = crossChecks(parsed.data);
  if (cross.length) throw new Error(cross.map((i) => `${i.path}: ${i.message}`).join('; '));
  return parsed.data;
}

/**
 * A fresh model for run `g`. A step in flight finishes on the old model first: disposing it mid-step would break
 * the step, and its record must still carry the old run's gen (the page drops it). run/step messages that
 * arrive meanwhile belong to the new run: the loop starts for them once the model is built.
 */
async function reset(g: number, s: Settings, choice: BackendChoice, overrides: readonly string[]): Promise<void> {
  running = false;
  budget = 0;
  resetsPending++;
  try {
    await loopDone;
    gen = g;
    const { backend, label, note } = await (backendReady ??= startBackend(choice));
    trainer?.dispose();
    trainer = null;
    cfg = configOf(s, LIVE_STEPS, backend, overrides);
    data = playgroundData(cfg, { train: CORPUS_TRAIN, val: CORPUS_VAL });
    trainer = new Trainer(cfg, { data: { ...data, tokenizer: null } });
    send({ type: 'ready', backend: label, backendNote: note, params: trainer.model.numParams(), layers: trainer.model.moeLayers.length, experts: trainer.model.moeLayers[0]?.config.numExperts ?? 0 });
    send({ type: 'state', running: false });
  } finally {
    resetsPending--;
  }
  if (running || budget > 0) void loop();
}

/**
 * Routes the sample batch without gradients and reads back row 0: probabilities, chosen experts, kept or
 * dropped. Every read is `await data()` (WebGPU has no cheap synchronous read); the step loop awaits this, so
 * no other tfjs work runs meanwhile.
 */
async function probe(t: Trainer, d: PlaygroundData): Promise<Probe | null> {
  if (!d.sample || d.sample.batch.kind !== 'tokens') return null;
  const b = d.sample.batch;
  const L = b.L;
  const layers: LayerProbe[] = [];
  await scoped(async () => { // plain arrays leave through the closure; every tensor made here is disposed
    const out = await t.model.forwardLMAsync(b.inputs, b.targets, b.B, b.L, () => ({ training: false }));
    for (const [l, m] of out.moe.entries()) {
      const E = m.routing.probs.shape[1];
      const all = (await m.routing.probs.data()) as Float32Array; // [B·L, E]: the sentence is row 0, tokens 0..L-1
      const probs = Array.from({ length: L }, (_, tok) => Array.from(all.subarray(tok * E, (tok + 1) * E)));
      const experts: number[][] = Array.from({ length: L }, () => []);
      const kept: boolean[][] = Array.from({ length: L }, () => []);
      if (m.routing.kind === 'token-choice') {
        const k = m.routing.indices.shape[1];
        const chosen = (await m.routing.indices.data()) as Int32Array;
        const { cap } = t.model.moeLayers[l].plan(m.routing, { indices: chosen, probs: all }); // the layer's own capacity rule on these choices
        const idx = cap?.indices ?? chosen;
        for (let tok = 0; tok < L; tok++) {
          for (let j = 0; j < k; j++) { experts[tok].push(idx[tok * k + j]); kept[tok].push(cap ? cap.keep[tok * k + j] === 1 : true); }
        }
      } else {
        const picks = (await m.routing.tokenIndices.array()) as number[][]; // [E][C] tokens each expert took
        picks.forEach((toks, e) => toks.forEach((tok) => { if (tok < L) { experts[tok].push(e); kept[tok].push(true); } }));
        experts.forEach((ex, tok) => ex.sort((a, b) => probs[tok][b] - probs[tok][a]));
      }
      layers.push({ probs: probs.map((row) => row.map((p) => +p.toPrecision(4))), experts, kept });
    }
    return [];
  });
  return { step: t.step, tokens: Array.from(d.sample.tokens), layers };
}

async function oneStep(t: Trainer): Promise<void> {
  const c = t.cfg;
  const lr = learningRateAt(t.step, c);
  const t0 = performance.now();
  const r = await t.trainStep(); // await: the step may read the device asynchronously (WebGPU)
  const ms = performance.now() - t0;
  send({ type: 'record', record: stepRecord(t, r, lr, (t.data.tokensPerBatch * c.grad_accum_steps) / (ms / 1000)), stepMs: ms });
}

/** Zero-delay yield so pause/reset messages are seen between steps (setTimeout clamps to 4 ms when nested). */
const yieldToMessages = () => new Promise<void>((resolve) => { const ch = new MessageChannel(); ch.port1.onmessage = () => resolve(); ch.port2.postMessage(0); });

async function loop(): Promise<void> {
  if (looping || resetsPending > 0) return; // a reset starts the loop when it is done
  looping = true;
  let done = () => {};
  loopDone = new Promise((r) => { done = r; });
  send({ type: 'state', running: true });
  try {
    while ((running || budget > 0) && trainer && data && resetsPending === 0) {
      const t = trainer, d = data;
      await oneStep(t);
      if (resetsPending > 0) break; // the model is about to be replaced: no probe of it
      if (budget > 0) budget--;
      const stopping = !running && budget === 0;
      if (t.step % PROBE_EVERY === 0 || t.step === 1 || stopping) {
        const p = await probe(t, d);
        if (p) send({ type: 'probe', probe: p });
      }
      await yieldToMessages();
    }
  } catch (e) {
    if (resetsPending === 0) { // else the run failed is being replaced, and running/budget are the next run's
      running = false;
      budget = 0;
      send({ type: 'error', message: (e as Error).message });
    }
  } finally {
    looping = false;
    send({ type: 'state', running: false });
    done();
  }
}

/** config.yaml of the run so far, as `switchyard train` writes it: steps ≥ the warmup, so the CLI's lr matches. */
function exportYaml(t: Trainer): { configYaml: string; steps: number } {
  const c = structuredClone(t.cfg);
  c.steps = Math.max(t.step, c.warmup_steps, 1);
  const header = '# Switchyard run config, resolved: every default filled in. Exported from the playground.\n';
  return { configYaml: header + stringify(c, { lineWidth: 0 }), steps: t.step };
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  const fail = (e: unknown) => send({ type: 'error', message: (e as Error).message });
  switch (m.type) {
    case 'reset': void reset(m.gen, m.settings, m.backend, m.overrides).catch(fail); break;
    // a backend that failed to start was reported by reset: nothing to train
    case 'run': running = true; void (backendReady ?? Promise.resolve()).then(() => loop(), () => undefined); break;
    case 'pause': running = false; budget = 0; break;
    case 'step': budget += m.n; void (backendReady ?? Promise.resolve()).then(() => loop(), () => undefined); break;
    case 'export': if (trainer) send({ type: 'export', ...exportYaml(trainer) }); break;
  }
};
