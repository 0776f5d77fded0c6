/**
 * An expert-parallel rank: a worker thread with its own tfjs backend and its experts (ExpertStore).
 * It boots asynchronously, then serves commands in a blocking loop (the main thread blocks too, so
 * nothing may depend on either event loop): wait for the doorbell, read the command message, run it,
 * post a reply, set ACK. Forward and backward stream chunk by chunk: wait for READY ≥ c+1 (the main
 * thread wrote the chunk's rows), in hierarchical mode forward stage-2 tokens to node peers and wait
 * for theirs, compute, write rows to the outbox, set DONE = c+1.
 */
import { workerData, parentPort, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { initBackend, type BackendName } from '../backend.ts';
import { ExpertStore } from './expert_store.ts';
import { decodeMeta } from './meta.ts';
import {
  ABORT, ACK, CMD, DONE, FWD, MAIN_SEQ, READY, STATUS, STATUS_DEAD, STATUS_ERROR, STOP,
  T_COMM, T_COMPUTE, T_DONE_AT, T_WAIT, rankBase, waitUntil, wallNow, type Buffers, type Command, type FaultKind, type Reply,
} from './protocol.ts';

export interface WorkerInit {
  rank: number;
  epSize: number;
  ctrl: SharedArrayBuffer;
  timing: SharedArrayBuffer;
  cmdPort: MessagePort;
  replyPort: MessagePort;
  backend: BackendName;
}

const init = workerData as WorkerInit;
const { rank, epSize: N } = init;
const ctrl = new Int32Array(init.ctrl);
const timing = new Float64Array(init.timing);
const base = rankBase(rank, N);
const tm = 4 * rank;

/** Wakes the main thread (it waits on MAIN_SEQ). */
function bump(): void {
  Atomics.add(ctrl, MAIN_SEQ, 1);
  Atomics.notify(ctrl, MAIN_SEQ);
}

process.on('exit', () => {
  Atomics.store(ctrl, base + STATUS, STATUS_DEAD);
  bump();
});

let store: ExpertStore | null = null;
let inbox: Float32Array[] = [];
let outbox: Float32Array | null = null;
/** every rank's outbox (a gateway reads its node peers' partial sums there in the backward's reduction). */
let outboxes: Float32Array[] = [];
let meta: Int32Array | null = null;
let fault: { kind: FaultKind; on: 'fwd' | 'bwd' } | null = null;
/** What the backward of one chunk needs of the forward's layout (copied: the meta buffer is reused by later calls). */
interface ChunkRecord {
  outStart: number;
  nRows: number;
  inboxRows: number;
  rowSrc: Int32Array;
  forwards: { peer: number; peerOutStart: number; src: Int32Array; dst: Int32Array }[];
}
/** call id → per chunk, for the backward pass. */
const calls = new Map<number, ChunkRecord[]>();

function setBuffers(b: Buffers): void {
  inbox = b.inbox.map((s) => new Float32Array(s));
  outboxes = b.outbox.map((o) => new Float32Array(o));
  outbox = outboxes[rank];
  meta = new Int32Array(b.meta[rank]);
}

function experts(): ExpertStore {
  if (!store) throw new Error(`rank ${rank}: not initialised`);
  return store;
}

/** Blocks until ctrl[index] ≥ value; gives up on abort, stop or timeout. */
function waitAtLeast(index: number, value: number, timeoutMs: number, what: string): void {
  const t0 = performance.now();
  waitUntil(ctrl, index, () => Atomics.load(ctrl, index) >= value, timeoutMs,
    () => (Atomics.load(ctrl, ABORT) || Atomics.load(ctrl, STOP) ? new Error(`rank ${rank}: aborted while waiting for ${what}`) : null),
    () => new Error(`rank ${rank}: timed out after ${timeoutMs} ms waiting for ${what}`));
  timing[tm + T_WAIT] += performance.now() - t0;
}

/** Runs an injected fault (test hook) when `phase` matches. */
function maybeFault(phase: 'fwd' | 'bwd'): void {
  if (!fault || fault.on !== phase) return;
  const kind = fault.kind;
  fault = null;
  switch (kind) {
    case 'throw': throw new Error(`injected fault in ${phase}`);
    case 'exit': process.exit(1);
    case 'hang': { const dummy = new Int32Array(new SharedArrayBuffer(4)); for (;;) Atomics.wait(dummy, 0, 0, 1000); }
  }
}

function forward(cmd: Extract<Command, { op: 'fwd' }>): void {
  maybeFault('fwd');
  if (cmd.buffers) setBuffers(cmd.buffers);
  const layout = decodeMeta(meta!);
  const mine = inbox[rank], out = outbox!;
  const D = experts().dim(cmd.layer);
  const record: ChunkRecord[] = [];
  layout.forEach((ch, c) => {
    waitAtLeast(base + READY, c + 1, cmd.timeoutMs, `chunk ${c} of call ${cmd.call}`);
    let t0 = performance.now();
    for (const f of ch.forwards) { // stage 2: this rank is the gateway for f.peer's tokens from other nodes
      const dst = inbox[f.peer];
      for (let i = 0; i < f.src.length; i++) {
        const s = (ch.inboxStart + f.src[i]) * D;
        dst.set(mine.subarray(s, s + D), (f.peerInboxStart + f.dst[i]) * D);
      }
      const at = rankBase(f.peer, N) + FWD + rank;
      Atomics.store(ctrl, at, c + 1);
      Atomics.notify(ctrl, at);
    }
    timing[tm + T_COMM] += performance.now() - t0;
    for (const f of ch.forwards) waitAtLeast(base + FWD + f.peer, c + 1, cmd.timeoutMs, `stage-2 tokens of chunk ${c} from rank ${f.peer}`);
    t0 = performance.now();
    const x = new Float32Array(ch.nRows * D);
    for (let i = 0; i < ch.nRows; i++) { // expand received tokens into rows
      const s = (ch.inboxStart + ch.rowSrc[i]) * D;
      x.set(mine.subarray(s, s + D), i * D);
    }
    let t1 = performance.now();
    timing[tm + T_COMM] += t1 - t0;
    const y = experts().forward(cmd.layer, cmd.call, c, x, ch.slotCounts, cmd.save);
    t0 = performance.now();
    timing[tm + T_COMPUTE] += t0 - t1;
    out.set(y, ch.outStart * D);
    t1 = performance.now();
    timing[tm + T_COMM] += t1 - t0;
    record.push({
      outStart: ch.outStart, nRows: ch.nRows, inboxRows: ch.inboxRows, rowSrc: ch.rowSrc.slice(),
      forwards: ch.forwards.map((f) => ({ peer: f.peer, peerOutStart: f.peerOutStart, src: f.src.slice(), dst: f.dst.slice() })),
    });
    Atomics.store(ctrl, base + DONE, c + 1);
    bump();
  });
  if (cmd.save) calls.set(cmd.call, record);
  timing[tm + T_DONE_AT] = wallNow();
}

function backward(cmd: Extract<Command, { op: 'bwd' }>): void {
  maybeFault('bwd');
  if (cmd.buffers) setBuffers(cmd.buffers);
  const record = calls.get(cmd.call);
  if (!record) throw new Error(`rank ${rank}: backward of call ${cmd.call} without its forward`);
  calls.delete(cmd.call);
  const mine = inbox[rank], out = outbox!;
  const D = experts().dim(cmd.layer);
  record.forEach((ch, c) => {
    waitAtLeast(base + READY, c + 1, cmd.timeoutMs, `dy of chunk ${c} of call ${cmd.call}`);
    let t0 = performance.now();
    const dy = mine.slice(ch.outStart * D, (ch.outStart + ch.nRows) * D); // dy rows sit where ys rows went
    let t1 = performance.now();
    timing[tm + T_COMM] += t1 - t0;
    const dx = experts().backward(cmd.layer, cmd.call, c, dy);
    t0 = performance.now();
    timing[tm + T_COMPUTE] += t0 - t1;
    if (cmd.reduce) reduceHome(ch, c, dx, D, cmd.timeoutMs);
    else out.set(dx, ch.outStart * D);
    t1 = performance.now();
    timing[tm + T_COMM] += t1 - t0;
    Atomics.store(ctrl, base + DONE, c + 1);
    bump();
  });
  timing[tm + T_DONE_AT] = wallNow();
}

/**
 * Hierarchical backward (exchange.ts): this rank's dx rows of a token summed into the token's inbox entry;
 * entries of tokens a gateway forwarded go back to it (it reads them from this outbox once signalled), and as a
 * gateway this rank adds its node peers' sums into its own entries, which then go home one per (token, node).
 */
function reduceHome(ch: ChunkRecord, c: number, dx: Float32Array, D: number, timeoutMs: number): void {
  const out = outbox!;
  const ent = new Float32Array(ch.inboxRows * D);
  for (let i = 0; i < ch.nRows; i++) {
    const e = ch.rowSrc[i] * D;
    for (let d = 0; d < D; d++) ent[e + d] += dx[i * D + d];
  }
  out.set(ent, ch.outStart * D);
  for (const f of ch.forwards) { // every node peer: its partial sums for my tokens, or my signal that mine are written
    const at = rankBase(f.peer, N) + FWD + rank;
    Atomics.store(ctrl, at, c + 1);
    Atomics.notify(ctrl, at);
  }
  for (const f of ch.forwards) waitAtLeast(base + FWD + f.peer, c + 1, timeoutMs, `reduced dx of chunk ${c} from rank ${f.peer}`);
  for (const f of ch.forwards) {
    const peerOut = outboxes[f.peer];
    for (let i = 0; i < f.src.length; i++) {
      const s = (f.peerOutStart + f.dst[i]) * D, o = (ch.outStart + f.src[i]) * D;
      for (let d = 0; d < D; d++) out[o + d] += peerOut[s + d];
    }
  }
}

/** Runs one command; returns the reply value (undefined for none). */
function handle(cmd: Command): unknown {
  const timed = <T>(f: () => T): T => {
    const t0 = performance.now();
    const v = f();
    timing[tm + T_COMPUTE] += performance.now() - t0;
    timing[tm + T_DONE_AT] = wallNow();
    return v;
  };
  switch (cmd.op) {
    case 'init': store = new ExpertStore(cmd); return undefined;
    case 'fwd': forward(cmd); return undefined;
    case 'bwd': backward(cmd); return undefined;
    case 'getGrads': return experts().getGrads(cmd.layer);
    case 'setGrads': experts().setGrads(cmd.layer, cmd.grads); return undefined;
    case 'normSq': return timed(() => experts().normSq());
    case 'scale': timed(() => experts().scale(cmd.s)); return undefined;
    case 'scaleExperts': timed(() => experts().scaleExperts(cmd.layer, cmd.s)); return undefined;
    case 'gradStats': return timed(() => experts().gradStats(cmd.layer));
    case 'step': timed(() => experts().step(cmd.lr, cmd.frozen)); calls.clear(); return undefined;
    case 'getExpert': return experts().getExpert(cmd.layer, cmd.expert);
    case 'setExpert': timed(() => experts().setExpert(cmd.layer, cmd.expert, cmd.w, cmd.noise, cmd.rho)); return undefined;
    case 'getWeights': return experts().getWeights(cmd.layer);
    case 'setWeights': experts().setWeights(cmd.layer, cmd.experts); return undefined;
    case 'kept': return experts().keptFloats();
    case 'getOpt': return experts().getOpt();
    case 'setOpt': experts().setOpt(cmd.state); return undefined;
    case 'fault': fault = { kind: cmd.kind, on: cmd.on }; return undefined;
  }
}

/** The next command message; it is posted before the doorbell rings, so it is there (retry briefly anyway). */
function receive(): Command {
  for (let i = 0; i < 100; i++) {
    const m = receiveMessageOnPort(init.cmdPort);
    if (m) return m.message as Command;
    Atomics.wait(ctrl, STOP, 0, 10);
  }
  throw new Error(`rank ${rank}: doorbell rang but no command arrived`);
}

await initBackend(init.backend, { quiet: true });
parentPort!.postMessage({ booted: true });
let seq = 0;
for (;;) {
  while (Atomics.load(ctrl, base + CMD) === seq && !Atomics.load(ctrl, STOP)) Atomics.wait(ctrl, base + CMD, seq, 200);
  if (Atomics.load(ctrl, STOP)) break;
  seq = Atomics.load(ctrl, base + CMD);
  let reply: Reply;
  try {
    reply = { ok: true, value: handle(receive()) };
  } catch (e) {
    reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  init.replyPort.postMessage(reply);
  if (!reply.ok) Atomics.store(ctrl, base + STATUS, STATUS_ERROR);
  Atomics.store(ctrl, base + ACK, seq);
  bump();
}
(store as ExpertStore | null)?.dispose();
