/**
 * The main thread's side of the worker wire: starts N worker threads, rings doorbells, waits (blocking,
 * with deadlines) and turns a worker's error, death or silence into an Error naming the rank. After a
 * failure the group refuses further work (ABORT tells waiting workers to give up); dispose() always ends
 * every thread.
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { BackendName } from '../backend.ts';
import {
  ABORT, ACK, CMD, MAIN_SEQ, STATUS, STATUS_DEAD, STATUS_ERROR, STOP,
  ctrlWords, rankBase, waitUntil, type Command, type Reply,
} from './protocol.ts';
import type { WorkerInit } from './worker.ts';

const BOOT_URL = new URL('./worker_boot.js', import.meta.url);

export class WorkerGroup {
  readonly size: number;
  readonly ctrl: Int32Array;
  readonly timing: Float64Array;
  timeoutMs: number;
  private readonly workers: Worker[];
  private readonly cmdPorts: MessagePort[];
  private readonly replyPorts: MessagePort[];
  private readonly sent: number[];
  private readonly exitCodes: (number | null)[];
  private failure: Error | null = null;

  private constructor(size: number, timeoutMs: number, ctrl: SharedArrayBuffer, timing: SharedArrayBuffer, backend: BackendName) {
    this.size = size;
    this.timeoutMs = timeoutMs;
    this.ctrl = new Int32Array(ctrl);
    this.timing = new Float64Array(timing);
    this.sent = new Array<number>(size).fill(0);
    this.exitCodes = new Array<number | null>(size).fill(null);
    this.cmdPorts = [];
    this.replyPorts = [];
    this.workers = Array.from({ length: size }, (_, rank) => {
      const cmd = new MessageChannel(), reply = new MessageChannel();
      this.cmdPorts.push(cmd.port1);
      this.replyPorts.push(reply.port1);
      const data: WorkerInit = { rank, epSize: size, ctrl, timing, cmdPort: cmd.port2, replyPort: reply.port2, backend };
      const w = new Worker(BOOT_URL, { workerData: data, transferList: [cmd.port2, reply.port2] });
      w.on('exit', (code) => { this.exitCodes[rank] = code; });
      w.on('error', () => {}); // seen through STATUS / exit; an unhandled 'error' event would crash the process
      w.unref(); // a forgotten dispose() must not keep the process alive
      return w;
    });
  }

  /** Starts `size` workers on `backend` and waits until each has booted (its tfjs backend is ready). */
  static async start(size: number, backend: BackendName, timeoutMs: number): Promise<WorkerGroup> {
    const g = new WorkerGroup(size, timeoutMs, new SharedArrayBuffer(4 * ctrlWords(size)), new SharedArrayBuffer(8 * 4 * size), backend);
    const bootMs = Math.max(timeoutMs, 60_000); // compiling TS and loading tfjs on a busy 2-core machine takes seconds
    try {
      await Promise.all(g.workers.map((w, r) => new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`ExpertParallel: rank ${r} did not boot within ${bootMs} ms`)), bootMs);
        w.once('message', () => { clearTimeout(timer); resolve(); });
        w.once('error', (e) => { clearTimeout(timer); reject(new Error(`ExpertParallel: rank ${r} failed to boot: ${e.message}`)); });
        w.once('exit', (code) => { clearTimeout(timer); reject(new Error(`ExpertParallel: rank ${r} exited with code ${code} while booting`)); });
      })));
    } catch (e) {
      await g.dispose();
      throw e;
    }
    return g;
  }

  /** Throws if an earlier failure made the group unusable. */
  checkUsable(): void {
    if (this.failure) throw new Error(`ExpertParallel: unusable after an earlier failure (${this.failure.message})`);
  }

  /** The first failure among ranks: an error reported, a thread dead; null when all are well. */
  health(): Error | null {
    for (let r = 0; r < this.size; r++) {
      const st = Atomics.load(this.ctrl, rankBase(r, this.size) + STATUS);
      if (st === STATUS_ERROR) {
        const m = receiveMessageOnPort(this.replyPorts[r])?.message as Reply | undefined;
        return new Error(`ExpertParallel: rank ${r} failed: ${m && !m.ok ? m.error : 'unknown error'}`);
      }
      if (st === STATUS_DEAD || this.exitCodes[r] !== null) {
        return new Error(`ExpertParallel: rank ${r} died (worker thread exited${this.exitCodes[r] !== null ? ` with code ${this.exitCodes[r]}` : ''})`);
      }
    }
    return null;
  }

  /** Marks the group failed (workers stop waiting) and returns the error to throw. */
  fail(err: Error): Error {
    if (!this.failure) this.failure = err;
    Atomics.store(this.ctrl, ABORT, 1);
    for (let r = 0; r < this.size; r++) Atomics.notify(this.ctrl, rankBase(r, this.size) + CMD);
    return err;
  }

  /** Blocks until done(); `pending` names the ranks still owing work for the timeout message. */
  wait(done: () => boolean, pending: () => number[], what: string): void {
    try {
      waitUntil(this.ctrl, MAIN_SEQ, done, this.timeoutMs, () => this.health(),
        () => new Error(`ExpertParallel: rank ${pending().join(', ')} did not answer within ${this.timeoutMs} ms (${what})`));
    } catch (e) {
      throw this.fail(e as Error);
    }
  }

  /** Posts a command to rank r and rings its doorbell (the message is queued before the ring). */
  send(r: number, cmd: Command): void {
    this.checkUsable();
    this.cmdPorts[r].postMessage(cmd);
    this.sent[r]++;
    const at = rankBase(r, this.size) + CMD;
    Atomics.store(this.ctrl, at, this.sent[r]);
    Atomics.notify(this.ctrl, at);
  }

  /** Waits for ranks to finish their last command; returns each one's reply value. */
  collect(ranks: number[], what: string): unknown[] {
    const acked = (r: number) => Atomics.load(this.ctrl, rankBase(r, this.size) + ACK) >= this.sent[r];
    this.wait(() => ranks.every(acked), () => ranks.filter((r) => !acked(r)), what);
    return ranks.map((r) => {
      const m = receiveMessageOnPort(this.replyPorts[r])?.message as Reply | undefined;
      if (!m) throw this.fail(new Error(`ExpertParallel: rank ${r} finished ${what} without a reply`));
      if (!m.ok) throw this.fail(new Error(`ExpertParallel: rank ${r} failed: ${m.error}`));
      return m.value;
    });
  }

  /** send to every rank (make(r) builds its command), then collect. */
  command(make: (r: number) => Command, what: string): unknown[] {
    const ranks = Array.from({ length: this.size }, (_, r) => r);
    for (const r of ranks) this.send(r, make(r));
    return this.collect(ranks, what);
  }

  /** Sets ctrl word `field` of rank r and wakes it. */
  signal(r: number, field: number, value: number): void {
    const at = rankBase(r, this.size) + field;
    Atomics.store(this.ctrl, at, value);
    Atomics.notify(this.ctrl, at);
  }

  /** ctrl word `field` of rank r. */
  read(r: number, field: number): number {
    return Atomics.load(this.ctrl, rankBase(r, this.size) + field);
  }

  /** Threads not yet exited. */
  alive(): number {
    return this.exitCodes.filter((c) => c === null).length;
  }

  /** Stops and terminates every worker; resolves once all have exited (never hangs). */
  async dispose(): Promise<void> {
    Atomics.store(this.ctrl, STOP, 1);
    for (let r = 0; r < this.size; r++) Atomics.notify(this.ctrl, rankBase(r, this.size) + CMD);
    await Promise.all(this.workers.map((w, r) => this.exitCodes[r] !== null ? undefined : w.terminate()));
    // terminate() resolves on exit, but the 'exit' listener may run a tick later.
    for (let i = 0; i < 100 && this.alive() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    for (const p of [...this.cmdPorts, ...this.replyPorts]) p.close();
  }
}
