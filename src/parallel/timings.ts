/**
 * Per-rank accounting between two takes (one training step): compute, communication, straggler idle
 * time and bytes sent, plus the group's traffic by phase and the overlap that chunking bought.
 *   idle_r        = Σ_calls (max_j doneAt_j − doneAt_r)       time rank r waited for the straggler
 *   comm_eff_r    = compute_r / (compute_r + comm_r)          (the seeds' communication efficiency)
 *   overlap       = Σ_calls max(0, main copies + max_r busy_r − wall)   a lower bound on the time pipelining hid
 *                   (busy_r = rank r's compute + own copies in the call)
 * comm_r is the time spent moving rank r's rows: the main thread's copies into / out of its buffers
 * (it plays the home ranks' send side) plus the rank's own copies (row expansion, stage-2 forwarding).
 */
import type { EpRankTiming } from '../metrics/jsonl.ts';
import type { CallTraffic, LinkBytes } from './exchange.ts';
import { T_COMM, T_COMPUTE, T_DONE_AT, T_WAIT } from './protocol.ts';

/** Bytes moved by phase over the calls since the last take, and what overlap saved. */
export interface EpTraffic {
  /** forward xs to experts (deduplicated per node in hierarchical mode). */
  dispatch: LinkBytes;
  /** forward ys home. */
  combine: LinkBytes;
  /** backward dy to experts plus dxs home (reduced per token and node in hierarchical mode). */
  backward: LinkBytes;
  /** all phases. */
  total: LinkBytes;
  /** forward and backward calls. */
  calls: number;
  /** main-thread wall time inside calls. */
  wall_ms: number;
  /** time hidden by overlapping copies with compute (0 without chunking, up to noise). */
  overlap_ms: number;
}

const zero = (): LinkBytes => ({ intra: 0, inter: 0 });
const addTo = (a: LinkBytes, b: LinkBytes, k = 1) => { a.intra += k * b.intra; a.inter += k * b.inter; };

export class EpClock {
  private readonly n: number;
  private mainComm: Float64Array;
  private idle: Float64Array;
  private sent: Float64Array;
  private sentInter: Float64Array;
  private savedInter: Float64Array;
  private traffic: EpTraffic;

  constructor(n: number) {
    this.n = n;
    this.mainComm = new Float64Array(n);
    this.idle = new Float64Array(n);
    this.sent = new Float64Array(n);
    this.sentInter = new Float64Array(n);
    this.savedInter = new Float64Array(n);
    this.traffic = EpClock.emptyTraffic();
  }

  private static emptyTraffic(): EpTraffic {
    return { dispatch: zero(), combine: zero(), backward: zero(), total: zero(), calls: 0, wall_ms: 0, overlap_ms: 0 };
  }

  /** Worker busy ms (compute + own copies) so far, per rank (to difference around a call). */
  busySoFar(timing: Float64Array): number[] {
    return Array.from({ length: this.n }, (_, r) => timing[4 * r + T_COMPUTE] + timing[4 * r + T_COMM]);
  }

  /** Idle time of a finished command from the ranks' finish stamps. */
  addIdle(timing: Float64Array): void {
    const done = Array.from({ length: this.n }, (_, r) => timing[4 * r + T_DONE_AT]);
    const last = Math.max(...done);
    done.forEach((d, r) => { this.idle[r] += last - d; });
  }

  /** Books one forward or backward call. */
  addCall(kind: 'fwd' | 'bwd', tr: CallTraffic, copyMs: Float64Array, timing: Float64Array, busyBefore: number[], wallMs: number): void {
    const t = this.traffic;
    if (kind === 'fwd') {
      addTo(t.dispatch, tr.dispatch);
      addTo(t.combine, tr.perRow);
      addTo(t.total, tr.dispatch);
      addTo(t.total, tr.perRow);
    } else {
      addTo(t.backward, tr.perRow); // dy out
      addTo(t.backward, tr.reduce); // dxs home
      addTo(t.total, tr.perRow);
      addTo(t.total, tr.reduce);
    }
    for (let r = 0; r < this.n; r++) {
      this.mainComm[r] += copyMs[r];
      this.sent[r] += kind === 'fwd' ? tr.dispatchSent[r] + tr.rowsSent[r] : tr.rowsHomeSent[r] + tr.reduceSent[r];
      this.sentInter[r] += kind === 'fwd' ? tr.dispatchSentInter[r] + tr.rowsSentInter[r] : tr.rowsHomeSentInter[r] + tr.reduceSentInter[r];
      // what dedup saved against flat: the dispatch's copies per row, the dxs rows' per row
      this.savedInter[r] += kind === 'fwd' ? tr.flatDispatchSentInter[r] - tr.dispatchSentInter[r] : tr.rowsSentInter[r] - tr.reduceSentInter[r];
    }
    // Without overlap the call would take at least the main thread's copies plus the busiest rank's work.
    const busy = this.busySoFar(timing).map((b, r) => b - busyBefore[r]);
    const serial = copyMs.reduce((a, b) => a + b, 0) + Math.max(...busy);
    t.calls++;
    t.wall_ms += wallMs;
    t.overlap_ms += Math.max(0, serial - wallMs);
    this.addIdle(timing);
  }

  /** Per-rank timings since the last take (resets them and the workers' counters). */
  take(timing: Float64Array): EpRankTiming[] {
    const out: EpRankTiming[] = [];
    for (let r = 0; r < this.n; r++) {
      const compute = timing[4 * r + T_COMPUTE];
      const comm = timing[4 * r + T_COMM] + this.mainComm[r];
      out.push({
        rank: r, compute_ms: compute, comm_ms: comm, idle_ms: this.idle[r],
        bytes_sent: this.sent[r], bytes_inter: this.sentInter[r], bytes_inter_saved: this.savedInter[r],
        comm_efficiency: compute + comm > 0 ? compute / (compute + comm) : 1,
      });
      timing[4 * r + T_COMPUTE] = 0;
      timing[4 * r + T_COMM] = 0;
      timing[4 * r + T_WAIT] = 0;
    }
    this.mainComm.fill(0);
    this.idle.fill(0);
    this.sent.fill(0);
    this.sentInter.fill(0);
    this.savedInter.fill(0);
    return out;
  }

  /** Traffic since the last take (resets it). */
  takeTraffic(): EpTraffic {
    const t = this.traffic;
    this.traffic = EpClock.emptyTraffic();
    return t;
  }
}
