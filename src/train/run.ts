/**
 * A training run in a run folder: config.yaml, tokenizer.json, metrics.jsonl, checkpoints/, summary.json.
 * Files, signals and threads live here; each optimizer step is the Trainer's (step.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configToYaml } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { scheduleNotes, trainingMemoryIssue } from '../config/checks.ts';
import { initBackend } from '../backend.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import { MetricsWriter, truncateMetricsAfter, type MetricRecord } from '../metrics/jsonl.ts';
import { summarizeLayers } from '../metrics/balance.ts';
import { TensorBoardLogger } from '../metrics/tensorboard.ts';
import { checkpointStore, listCheckpoints } from './checkpoint.ts';
import { createDataSource } from './data_source.ts';
import { evaluate } from './evaluate.ts';
import { lockRunFolder, refuseLinks, removeLeftovers, writeIfChanged, type RunLock } from './run_folder.ts';
import { tokenizerToJson } from '../data/tokenizer.ts';
import { startDataParallel, startExpertParallel } from './parallel_bridge.ts';
import { meanOf, stepRecord } from './record.ts';
import { Trainer, learningRateAt, type StepResult, type TrainerEnv } from './step.ts';

export interface TrainOptions {
  /** the run folder (created; must be empty or hold this run when resuming). */
  outDir: string;
  /** continue from the newest checkpoint in outDir. */
  resume?: boolean;
  /** called with each metrics record (progress display). */
  onRecord?: (r: MetricRecord) => void;
  /** plain log lines (checkpoints, evaluations, skipped steps). */
  log?: (line: string) => void;
  /** test hook: make the task loss of these steps non-finite. */
  poisonStep?: (step: number) => boolean;
  /** set to true (e.g. by SIGINT) to save a checkpoint and stop after the current step. */
  stop?: { requested: boolean };
}

export interface TrainSummary {
  out_dir: string;
  steps: number;
  first_loss: number;
  final_loss: number;
  val_loss: number | null;
  val_ppl: number | null;
  tokens_per_s: number;
  step_time_ms: number;
  skipped_steps: number;
  stopped_early: boolean;
  params: number;
  per_layer_load: number[][];
  load_cv: number;
  max_load_share: number;
  maxvio: number;
  dropped_fraction: number;
}

/** The Node environment of a run folder: its data (tokenizer.json), its checkpoints/, worker threads. */
export function runFolderEnv(cfg: Config, outDir: string): TrainerEnv {
  return { data: createDataSource(cfg, outDir), checkpoints: checkpointStore(outDir), startExpertParallel, startDataParallel, cores: os.availableParallelism() };
}

/** A Trainer on the run folder outDir (fresh, or ready to restore() its newest checkpoint). */
export function openTrainer(cfg: Config, outDir: string): Trainer {
  return new Trainer(cfg, runFolderEnv(cfg, outDir));
}

/**
 * Trains cfg into opts.outDir (fresh or resumed) and returns the summary also written to summary.json.
 * Nothing in the folder changes until the run is known to start: links are refused, the writer lock taken,
 * and on resume the checkpoint loaded and checked, before config.yaml, tokenizer.json or metrics.jsonl are touched.
 */
export async function train(cfg: Config, opts: TrainOptions): Promise<TrainSummary> {
  const used = await initBackend(cfg.backend);
  const tooBig = used === cfg.backend ? null : trainingMemoryIssue({ ...cfg, backend: used });
  if (tooBig) throw new Error(`backend ${cfg.backend} is unavailable here and its fallback, ${used}, cannot hold this model: ${tooBig}`);
  const log = opts.log ?? (() => {});
  const dir = opts.outDir;
  if (opts.resume) {
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${dir}: no run folder to resume`);
  } else fs.mkdirSync(dir, { recursive: true });
  refuseLinks(dir);
  const lock = lockRunFolder(dir);
  try {
    if (lock.staleFrom !== null) log(`removed the stale lock of process ${lock.staleFrom}, which no longer runs`);
    if (!opts.resume && listCheckpoints(dir).length > 0) {
      throw new Error(`${dir} already holds a run; resume it with --resume or choose another --out`);
    }
    return await trainLocked(cfg, opts, log, lock);
  } finally {
    lock.release();
  }
}

/** train() with the run folder's lock held. */
async function trainLocked(cfg: Config, opts: TrainOptions, log: (line: string) => void, lock: RunLock): Promise<TrainSummary> {
  const dir = opts.outDir;
  const t = new Trainer(cfg, runFolderEnv(cfg, dir));
  const metricsFile = path.join(dir, 'metrics.jsonl');
  let resumedFrom: number | undefined;
  try {
    await t.startParallel(log);
    if (t.dp) log(`data parallelism: ${t.dp.size} ranks (the main thread and ${t.dp.size - 1} worker thread${t.dp.size > 2 ? 's' : ''}), each on batch_size/${t.dp.size} sequences`);
    const step = opts.resume ? await t.restoreAll() : 0;
    if (opts.resume) resumedFrom = step;
    // The run starts: from here on the folder changes.
    const leftovers = removeLeftovers(dir);
    if (leftovers.length) log(`removed ${leftovers.length} leftover${leftovers.length > 1 ? 's' : ''} of a killed writer: ${leftovers.slice(0, 4).join(', ')}${leftovers.length > 4 ? ', ...' : ''}`);
    writeIfChanged(path.join(dir, 'config.yaml'), configToYaml(cfg));
    if (t.data.tokenizer && !fs.existsSync(path.join(dir, 'tokenizer.json'))) writeJsonAtomic(path.join(dir, 'tokenizer.json'), tokenizerToJson(t.data.tokenizer));
    if (opts.resume) {
      truncateMetricsAfter(metricsFile, step); // a killed run may have logged past its last checkpoint
      log(`resumed from step ${step}`);
    } else if (fs.existsSync(metricsFile)) fs.rmSync(metricsFile);
    for (const note of scheduleNotes(cfg)) log(note); // a run shorter than its intervals: said once
  } catch (e) {
    if (t.ep) await t.ep.dispose().catch(() => {});
    if (t.dp) await t.dp.dispose().catch(() => {});
    t.dp = null;
    t.dispose();
    throw e;
  }
  const writer = new MetricsWriter(metricsFile);
  // TensorBoard's copy of each record; a resumed run's file restarts at the checkpoint step + 1.
  const tb = cfg.logging.tensorboard ? new TensorBoardLogger(opts.outDir, { resumedFrom }) : null;
  let first = NaN;
  let last = NaN;
  let lastVal: number | null = null;
  let lastRes: StepResult | null = null;
  let windowTokens = 0;
  let windowStart = performance.now();
  const t0 = performance.now();
  const startStep = t.step;
  let stopped = false;
  try {
    while (t.step < cfg.steps) {
      if (opts.stop?.requested) { stopped = true; break; }
      const step = t.step;
      const lr = learningRateAt(step, cfg);
      const r = await t.trainStep(opts.poisonStep?.(step) ?? false);
      lastRes = r;
      windowTokens += t.data.tokensPerBatch * cfg.grad_accum_steps;
      if (!r.finite) {
        log(`step ${step + 1}: non-finite loss or gradient, update skipped (${t.nanStreak} in a row)`);
        if (t.nanStreak >= cfg.max_nan_steps) {
          throw new Error(`stopped: ${t.nanStreak} non-finite steps in a row (max_nan_steps = ${cfg.max_nan_steps}); lower lr or enable grad_clip. The last good checkpoint is kept.`);
        }
      } else {
        if (Number.isNaN(first)) first = r.loss;
        last = r.loss;
      }
      const done = t.step === cfg.steps;
      const evalNow = cfg.eval_every > 0 && (t.step % cfg.eval_every === 0 || done);
      const logNow = t.step % cfg.log_every === 0 || done || evalNow;
      if (logNow) {
        const now = performance.now();
        const rec = stepRecord(t, r, lr, windowTokens / ((now - windowStart) / 1000));
        if (t.ep) rec.ep = t.ep.takeTimings();
        if (evalNow) {
          const ev = await evaluate(t.model, t.data);
          lastVal = ev.loss;
          rec.val_loss = ev.loss;
          rec.val_ppl = Math.exp(ev.loss);
        }
        writer.write(rec);
        tb?.write(rec);
        opts.onRecord?.(rec);
        windowTokens = 0;
        windowStart = performance.now();
      }
      if ((cfg.checkpoint_every > 0 && t.step % cfg.checkpoint_every === 0) || done) {
        lock.check();
        log(`checkpoint ${await t.save()}`);
      }
      await new Promise((resolve) => setImmediate(resolve)); // let SIGINT handlers run
    }
    if (stopped) { lock.check(); log(`stopped at step ${t.step}: checkpoint ${await t.save()}`); }
  } finally {
    writer.close();
    tb?.close();
    if (t.ep) { await t.ep.dispose().catch(() => {}); t.ep = null; } // never leave worker threads behind, even on failure
    if (t.dp) { await t.dp.dispose().catch(() => {}); t.dp = null; t.peers = null; }
  }
  const elapsed = (performance.now() - t0) / 1000;
  const ran = Math.max(1, t.step - startStep);
  const loads = lastRes ? lastRes.loads.map((l) => Array.from(l)) : [];
  const layers = summarizeLayers(loads.length ? loads : [[1]]);
  const summary: TrainSummary = {
    out_dir: opts.outDir, steps: t.step, first_loss: first, final_loss: last, val_loss: lastVal,
    val_ppl: lastVal === null ? null : Math.exp(lastVal),
    tokens_per_s: Math.round((ran * t.data.tokensPerBatch * cfg.grad_accum_steps) / elapsed),
    step_time_ms: +((elapsed * 1000) / ran).toFixed(1), skipped_steps: t.skippedSteps, stopped_early: stopped,
    params: t.model.numParams(), per_layer_load: loads,
    load_cv: layers.mean.cv, max_load_share: layers.mean.maxLoadShare, maxvio: layers.mean.maxVio,
    dropped_fraction: lastRes ? meanOf(lastRes.dropped.map((d, l) => d / Math.max(1, lastRes!.assignments[l]))) : 0,
  };
  lock.check();
  writeJsonAtomic(path.join(dir, 'summary.json'), summary);
  t.dispose();
  return summary;
}
