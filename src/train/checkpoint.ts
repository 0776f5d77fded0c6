/**
 * Checkpoints: RUN/checkpoints/step-NNNNNNNN/{model.safetensors, optimizer.safetensors, state.json}.
 * Each is written into a temporary folder and renamed into place, so a kill at any moment leaves
 * either the whole checkpoint or none; the newest `keep` are kept.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeJsonAtomic } from '../io/atomic.ts';
import { readRegularText } from '../io/regular_file.ts';
import { checkTensorsAgainst, readSafetensorsFile, writeSafetensorsAtomic, type SafeTensor } from '../io/safetensors.ts';
import { z } from 'zod';
import type { AdamWState } from '../optim/adamw.ts';
import type { Checkpoint, CheckpointStore, TrainState } from './env.ts';

export type { Checkpoint, TrainState } from './env.ts';

export const CHECKPOINT_DIR = 'checkpoints';
const PREFIX = 'step-';

const rngState = z.strictObject({ s: z.number().int().min(0).max(0xffffffff), spare: z.number().finite().nullable() });
const StateSchema = z.strictObject({
  step: z.number().int().min(0),
  rng: z.strictObject({ data: rngState, noise: rngState }),
  controllers: z.array(z.unknown()).max(64),
  nanStreak: z.number().int().min(0),
  skippedSteps: z.number().int().min(0),
  shape: z.record(z.string(), z.unknown()),
  extra: z.record(z.string(), z.unknown()).optional(),
});

/** Parses state.json of an untrusted checkpoint: a clean error naming the file and field, never a crash later. */
export function parseTrainState(text: string, file: string): TrainState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
  const r = StateSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`${file}: field '${i.path.join('.') || '(root)'}' is invalid: ${i.message}`);
  }
  return r.data as TrainState;
}


/** Folder name of the checkpoint after `step` completed steps. */
export function checkpointName(step: number): string {
  return `${PREFIX}${String(step).padStart(8, '0')}`;
}

/** Completed checkpoints of a run, oldest first (temporary folders of a killed save are ignored). */
export function listCheckpoints(runDir: string): string[] {
  const root = path.join(runDir, CHECKPOINT_DIR);
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root)
    .filter((n) => n.startsWith(PREFIX) && fs.existsSync(path.join(root, n, 'state.json')))
    .sort()
    .map((n) => path.join(root, n));
}

function toSafe(arrays: Record<string, { data: Float32Array; shape: number[] }>): Record<string, SafeTensor> {
  const out: Record<string, SafeTensor> = {};
  for (const [k, v] of Object.entries(arrays)) out[k] = { dtype: 'F32', shape: v.shape, data: v.data };
  return out;
}

/**
 * Writes a checkpoint atomically (temp folder + rename) and prunes all but the newest `keep`. The
 * parameters are read back with `await data()` first (the only read WebGPU allows), before anything is written.
 */
export async function saveCheckpoint(
  runDir: string, params: Record<string, tf.Variable>, optimizer: AdamWState, paramShapes: Record<string, number[]>,
  state: TrainState, keep: number,
): Promise<string> {
  const model: Record<string, { data: Float32Array; shape: number[] }> = {};
  const names = Object.keys(params);
  const values = await Promise.all(names.map((name) => params[name].data() as Promise<Float32Array>));
  names.forEach((name, i) => { model[name] = { data: values[i], shape: params[name].shape }; });
  const root = path.join(runDir, CHECKPOINT_DIR);
  fs.mkdirSync(root, { recursive: true });
  const final = path.join(root, checkpointName(state.step));
  const tmp = path.join(root, `.tmp-${checkpointName(state.step)}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  writeSafetensorsAtomic(path.join(tmp, 'model.safetensors'), toSafe(model), { format: 'switchyard', step: String(state.step) });
  const opt: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (const name of Object.keys(optimizer.m)) {
    opt[`m.${name}`] = { data: optimizer.m[name], shape: paramShapes[name] };
    opt[`v.${name}`] = { data: optimizer.v[name], shape: paramShapes[name] };
  }
  writeSafetensorsAtomic(path.join(tmp, 'optimizer.safetensors'), toSafe(opt), { adamw_step: String(optimizer.step) });
  writeJsonAtomic(path.join(tmp, 'state.json'), state);
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(old, { recursive: true, force: true });
  return final;
}

/** Throws naming the tensor and the first index when a weight is NaN or ±Infinity (a checkpoint never holds one). */
function checkFinite(data: Float32Array, name: string, file: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      let bad = 0;
      for (let j = i; j < data.length; j++) if (!Number.isFinite(data[j])) bad++;
      throw new Error(`${file}: tensor "${name}" holds ${bad} non-finite value${bad > 1 ? 's' : ''} (first ${data[i]} at flat index ${i}); refusing to load a checkpoint with NaN/Inf weights`);
    }
  }
}

/**
 * Reads a checkpoint and checks it against the model it will be loaded into: config fields that shape
 * the model, tensor names and shapes (`expectedShapes`: parameters and buffers; `trainableShapes`: those
 * with optimizer moments).
 */
export function loadCheckpoint(
  dir: string, expectedShapes: Record<string, number[]>, trainableShapes: Record<string, number[]>, expectedShape: Record<string, unknown>,
): Checkpoint {
  const stateFile = path.join(dir, 'state.json');
  const state = parseTrainState(readRegularText(stateFile, 16 * 1024 * 1024, 'checkpoint state'), stateFile);
  for (const [k, v] of Object.entries(expectedShape)) {
    if (JSON.stringify(state.shape?.[k]) !== JSON.stringify(v)) {
      throw new Error(`${dir}: checkpoint was made with ${k} = ${JSON.stringify(state.shape?.[k])}, but the model has ${k} = ${JSON.stringify(v)}`);
    }
  }
  const modelFile = path.join(dir, 'model.safetensors');
  const model = readSafetensorsFile(modelFile);
  checkTensorsAgainst(expectedShapes, model.tensors, modelFile);
  const params: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(model.tensors)) {
    if (t.dtype !== 'F32') throw new Error(`${modelFile}: tensor "${k}" has dtype ${t.dtype}, expected F32`);
    params[k] = t.data as Float32Array;
    checkFinite(params[k], k, modelFile);
  }
  const optFile = path.join(dir, 'optimizer.safetensors');
  const opt = readSafetensorsFile(optFile);
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  const expectedOpt: Record<string, number[]> = {};
  for (const [k, s] of Object.entries(trainableShapes)) { expectedOpt[`m.${k}`] = s; expectedOpt[`v.${k}`] = s; }
  checkTensorsAgainst(expectedOpt, opt.tensors, optFile);
  for (const [k, t] of Object.entries(opt.tensors)) {
    if (t.dtype !== 'F32') throw new Error(`${optFile}: tensor "${k}" has dtype ${t.dtype}, expected F32`);
    checkFinite(t.data as Float32Array, k, optFile);
    (k.startsWith('m.') ? m : v)[k.slice(2)] = t.data as Float32Array;
  }
  const step = Number(opt.metadata.adamw_step);
  if (!Number.isInteger(step) || step < 0) throw new Error(`${optFile}: metadata adamw_step = ${opt.metadata.adamw_step} is not a step count`);
  return { dir, params, optimizer: { step, m, v }, state };
}

/** The checkpoints of run folder runDir as the Trainer's storage. */
export function checkpointStore(runDir: string): CheckpointStore {
  return {
    loadNewest(expectedShapes, trainableShapes, shape) {
      const all = listCheckpoints(runDir);
      if (all.length === 0) throw new Error(`${runDir}: no checkpoint to resume from`);
      return loadCheckpoint(all[all.length - 1], expectedShapes, trainableShapes, shape);
    },
    save: (params, optimizer, paramShapes, state, keep) => saveCheckpoint(runDir, params, optimizer, paramShapes, state, keep),
  };
}
