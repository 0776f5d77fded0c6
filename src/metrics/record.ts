/**
 * One metrics.jsonl record: its type and its JSON line (non-finite numbers → null, listed in `nonfinite`).
 * Plain data, no files: the CLI's writer (jsonl.ts) and the browser playground's export share it.
 */

/** Expert-parallel timings of one rank for one step (milliseconds). */
export interface EpRankTiming {
  rank: number;
  compute_ms: number;
  comm_ms: number;
  idle_ms: number;
  /** bytes this rank sent (dispatch as home rank or gateway, rows home, gradients). */
  bytes_sent?: number;
  /** the inter-node part of bytes_sent. */
  bytes_inter?: number;
  /** inter-node bytes the hierarchical dedup saved against a flat exchange (forward and backward); a gateway's can be negative, the sum over ranks is the saving. */
  bytes_inter_saved?: number;
  /** compute / (compute + comm). */
  comm_efficiency?: number;
}

/**
 * One line of metrics.jsonl (fields: docs/metrics.md). Per-layer arrays are indexed by MoE layer (dense-FFN layers are
 * skipped); the balance scalars are means over MoE layers of the per-layer metric (balance.ts).
 * Validation results ride on the line of the step after which they were measured.
 * A value that was NaN or ±Infinity is written as null and its path listed in `nonfinite`.
 */
export interface MetricRecord {
  /** optimizer steps completed; strictly increasing through the file. */
  step: number;
  /** task loss (no aux terms). */
  loss: number | null;
  /** aux losses by name (unweighted, summed over MoE layers). */
  aux: Record<string, number | null>;
  lr: number;
  /** global gradient norm before clipping. */
  grad_norm: number | null;
  tokens_per_s: number | null;
  /** [L][E] assignments each expert computed this step (after capacity). */
  expert_load: number[][];
  /** [L] assignments dropped this step. */
  dropped: number[];
  /** mean over layers of CV = σ/μ of the load. */
  load_cv: number;
  /** mean over layers of max_i load_i / Σ load. */
  max_load_share: number;
  /** mean over layers of MaxVio = (max load − mean load) / mean load. */
  maxvio: number;
  /** mean over layers of the mean router entropy, in nats (ln E is uniform). */
  router_entropy: number;
  /** Σ dropped / Σ assignments over layers. */
  dropped_fraction?: number;
  val_loss?: number | null;
  val_ppl?: number | null;
  /** the (possibly dynamic) capacity factor: one for all layers, or per layer. */
  capacity_factor?: number | (number | null)[];
  /** [L] ids of experts with no tokens for the configured window. */
  dead_experts?: number[][];
  /** steps skipped so far for non-finite loss or gradients. */
  skipped_steps?: number;
  /** per-rank timings of an expert-parallel run. */
  ep?: EpRankTiming[];
  /** paths of values that were NaN/±Infinity and were written as null, e.g. ["loss", "aux.switch"]. */
  nonfinite?: string[];
}

/** Deep copy with every non-finite number replaced by null; their paths collected in `bad`. */
function sanitize(value: unknown, at: string, bad: string[]): unknown {
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
    bad.push(at);
    return null;
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    return Array.from(value as ArrayLike<unknown>, (v, i) => sanitize(v, `${at}[${i}]`, bad));
  }
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== undefined) out[k] = sanitize(v, at ? `${at}.${k}` : k, bad);
    }
    return out;
  }
  throw new Error(`metrics: ${at || 'record'} has a value of type ${typeof value}, which JSON cannot hold`);
}

/** The record as one JSON line (with '\n'): NaN/±Infinity → null, listed in `nonfinite`. */
export function toJsonLine(record: MetricRecord): string {
  if (!Number.isInteger(record.step) || record.step < 0) throw new Error(`MetricsWriter: step must be an integer ≥ 0, got ${record.step}`);
  const bad: string[] = [];
  const clean = sanitize({ ...record, nonfinite: undefined }, '', bad) as Record<string, unknown>;
  const flagged = [...new Set([...(record.nonfinite ?? []), ...bad])];
  if (flagged.length > 0) clean.nonfinite = flagged;
  return `${JSON.stringify(clean)}\n`;
}
