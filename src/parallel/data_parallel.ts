/**
 * Data parallelism over worker threads: rank 0 is the main thread (it owns the optimizer, the controllers
 * and the checkpoints), ranks 1..size-1 are workers with full model replicas (dp_worker.ts). Each step rank 0
 * sends its weights when they changed and every worker its share of the batch; ranks all-reduce each MoE
 * layer's balance statistics through rank 0 (summed in rank order, so every rank gets the same numbers),
 * and the workers send back their gradients, which rank 0 adds to its own.
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import type { Batch, DataParallelBridge, RankResult } from '../train/env.ts';
import type { DpCommand, DpReply, DpWorkerInit } from './dp_protocol.ts';

const BOOT_URL = new URL('./dp_worker_boot.js', import.meta.url);

type Kind = 'ready' | 'reduce' | 'result';

export class DataParallel implements DataParallelBridge {
  readonly size: number;
  /** longest wait for one worker's message before the run fails naming it. */
  timeoutMs: number;
  private readonly workers: Worker[];
  /** per worker rank (index r-1): messages not yet taken, and who waits for the next one, by kind. */
  private readonly inbox: Map<Kind, DpReply[]>[];
  private readonly waiting: Map<Kind, { resolve: (m: DpReply) => void; reject: (e: Error) => void }>[];
  private failure: Error | null = null;
  private seq = 0;
  readonly weights: Float32Array;
  private readonly gradBuffers: Float32Array[];

  private constructor(cfg: Config, size: number, vocab: number, sizes: { weights: number; grads: number }, timeoutMs: number) {
    this.size = size;
    this.timeoutMs = timeoutMs;
    const weights = new SharedArrayBuffer(4 * sizes.weights);
    this.weights = new Float32Array(weights);
    const grads = Array.from({ length: size - 1 }, () => new SharedArrayBuffer(4 * sizes.grads));
    this.gradBuffers = grads.map((g) => new Float32Array(g));
    this.inbox = Array.from({ length: size - 1 }, () => new Map());
    this.waiting = Array.from({ length: size - 1 }, () => new Map());
    this.workers = Array.from({ length: size - 1 }, (_, i) => {
      const rank = i + 1;
      const data: DpWorkerInit = { cfg, rank, size, vocab, weights, grads: grads[i] };
      const w = new Worker(BOOT_URL, { workerData: data });
      w.on('message', (m: DpReply) => {
        if (m.op === 'error') this.fail(new Error(`data-parallel rank ${rank} failed: ${m.message}`));
        else this.deliver(i, m.op, m);
      });
      w.on('error', (e) => this.fail(new Error(`data-parallel rank ${rank} failed: ${e.message}`)));
      w.on('exit', (code) => this.fail(new Error(`data-parallel rank ${rank} exited with code ${code}`)));
      w.unref(); // a forgotten dispose() must not keep the process alive
      return w;
    });
  }

  /** Starts size−1 workers with replicas of cfg's model; resolves once each has booted. */
  static async start(cfg: Config, size: number, vocab: number, sizes: { weights: number; grads: number }, timeoutMs = 300_000): Promise<DataParallel> {
    const dp = new DataParallel(cfg, size, vocab, sizes, timeoutMs);
    try {
      await Promise.all(dp.workers.map((_, i) => dp.take(i, 'ready', Math.max(timeoutMs, 60_000))));
    } catch (e) {
      await dp.dispose();
      throw e;
    }
    return dp;
  }

  private deliver(i: number, kind: Kind, m: DpReply): void {
    const w = this.waiting[i].get(kind);
    if (w) { this.waiting[i].delete(kind); w.resolve(m); return; }
    const q = this.inbox[i].get(kind) ?? [];
    q.push(m);
    this.inbox[i].set(kind, q);
  }

  /** Marks the group failed and rejects every wait (the first failure is the one reported). */
  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const byKind of this.waiting) { for (const w of byKind.values()) w.reject(e); byKind.clear(); }
  }

  /** The next message of `kind` from worker index i. */
  private take(i: number, kind: Kind, timeoutMs = this.timeoutMs): Promise<DpReply> {
    if (this.failure) return Promise.reject(this.failure);
    const q = this.inbox[i].get(kind);
    if (q?.length) return Promise.resolve(q.shift()!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting[i].delete(kind);
        reject(new Error(`data-parallel rank ${i + 1} sent no ${kind} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting[i].set(kind, { resolve: (m) => { clearTimeout(timer); resolve(m); }, reject: (e) => { clearTimeout(timer); reject(e); } });
    });
  }

  private send(i: number, m: DpCommand): void {
    if (this.failure) throw this.failure;
    this.workers[i].postMessage(m);
  }

  /** Every worker's replica takes the parameters and buffers written to `weights` (before its next step). */
  weightsWritten(): void {
    for (let i = 0; i < this.workers.length; i++) this.send(i, { op: 'weights' });
  }

  /** Rank r's gradients of the last step. */
  grads(r: number): Float32Array {
    return this.gradBuffers[r - 1];
  }

  /** Starts step `step` on every worker, rank r on shares[r-1]. */
  start(step: number, shares: Batch[][], poison: boolean): void {
    for (let i = 0; i < this.workers.length; i++) this.send(i, { op: 'step', step, batches: shares[i], poison });
  }

  /** Σ_r v_r with rank 0's v first and the workers' in rank order; every worker gets the same sum. */
  async allReduce(v: Float64Array): Promise<Float64Array> {
    const s = ++this.seq;
    const parts = await Promise.all(this.workers.map((_, i) => this.take(i, 'reduce')));
    const out = Float64Array.from(v);
    parts.forEach((m, i) => {
      const p = m as Extract<DpReply, { op: 'reduce' }>;
      if (p.seq !== s || p.v.length !== v.length) throw new Error(`data-parallel rank ${i + 1} reduced ${p.v.length} numbers as call ${p.seq}, rank 0 ${v.length} as call ${s}`);
      for (let j = 0; j < out.length; j++) out[j] += p.v[j];
    });
    for (let i = 0; i < this.workers.length; i++) this.send(i, { op: 'reduced', seq: s, v: out });
    return out;
  }

  /** The workers' results of the started step, rank 1 first. */
  async results(): Promise<RankResult[]> {
    const ms = await Promise.all(this.workers.map((_, i) => this.take(i, 'result')));
    return ms.map((m) => (m as Extract<DpReply, { op: 'result' }>).value);
  }

  /** Ends every worker; resolves once all have exited. */
  async dispose(): Promise<void> {
    this.fail(new Error('data parallelism was stopped'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
