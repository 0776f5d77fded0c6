/**
 * Expert-load balance metrics: pure functions of per-expert counts (plain numbers, no tensors), each
 * defined once and used by the trainer, `compare` and the report.
 *
 * `load` is the per-expert count of assignments an expert computed in one batch (MoEStats.load: after
 * capacity, so with top-k Σ load = T·k − dropped). Statistics over experts use the population form
 * (divide by E): the E experts are the whole population, not a sample.
 *
 * All-zero load (a batch with no tokens, or every assignment dropped) is defined, never NaN:
 * share = [0…], CV = 0, max share = 0, MaxVio = 0, utilization = [0…] — "no load, no imbalance".
 */
export { deadExperts, DeadExpertTracker } from './dead_experts.ts';

/** Checks a load vector: non-empty, every entry finite and ≥ 0; returns Σ load. */
export function checkLoad(load: ArrayLike<number>, fn: string): number {
  if (load === null || typeof load !== 'object' || typeof load.length !== 'number') throw new Error(`${fn}: load must be an array of numbers, got ${String(load)}`);
  if (load.length < 1) throw new Error(`${fn}: load must have at least one expert, got length 0`);
  let sum = 0;
  for (let i = 0; i < load.length; i++) {
    const v = load[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${fn}: load[${i}] = ${v} must be a finite number ≥ 0`);
    sum += v;
  }
  return sum;
}

/** mean = (1/n) Σ x_i; for no values, `empty` if given (else an error). The project's one mean. */
export function mean(values: ArrayLike<number>, empty?: number): number {
  if (values.length < 1) {
    if (empty !== undefined) return empty;
    throw new Error('mean: values must be non-empty, got length 0');
  }
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** σ = sqrt(Σ (x_i − mean)² / (n − ddof)); ddof 0 is the population std (numpy's and MindSpore's default), 1 torch's. */
export function std(values: ArrayLike<number>, ddof: 0 | 1 = 0): number {
  if (ddof !== 0 && ddof !== 1) throw new Error(`std: ddof must be 0 or 1, got ${ddof}`);
  if (values.length - ddof < 1) throw new Error(`std: need more than ${ddof} values for ddof = ${ddof}, got ${values.length}`);
  const m = mean(values);
  let ss = 0;
  for (let i = 0; i < values.length; i++) ss += (values[i] - m) ** 2;
  return Math.sqrt(ss / (values.length - ddof));
}

/** share_i = load_i / Σ_j load_j (all zeros when Σ load = 0). */
export function loadShare(load: ArrayLike<number>): number[] {
  const sum = checkLoad(load, 'loadShare');
  return Array.from(load, (v) => (sum > 0 ? v / sum : 0));
}

/** CV = σ / μ, σ = sqrt((1/E) Σ_i (load_i − μ)²), μ = (1/E) Σ_i load_i (0 when μ = 0). */
export function loadCv(load: ArrayLike<number>): number {
  const sum = checkLoad(load, 'loadCv');
  return sum > 0 ? std(load) / (sum / load.length) : 0;
}

/** max share = max_i load_i / Σ_j load_j (0 when Σ load = 0); 1/E is perfectly even, 1 is collapse. */
export function maxLoadShare(load: ArrayLike<number>): number {
  const sum = checkLoad(load, 'maxLoadShare');
  return sum > 0 ? Math.max(...Array.from(load)) / sum : 0;
}

/**
 * MaxVio = (max_i load_i − μ) / μ, μ = (1/E) Σ_i load_i (Wang et al. 2024, "Auxiliary-Loss-Free Load
 * Balancing Strategy for Mixture-of-Experts"); 0 when μ = 0. Range [0, E − 1]; 0 is perfectly even.
 */
export function maxVio(load: ArrayLike<number>): number {
  const sum = checkLoad(load, 'maxVio');
  if (sum === 0) return 0;
  const mu = sum / load.length;
  return (Math.max(...Array.from(load)) - mu) / mu;
}

/** MaxVio_global = MaxVio(Σ_s load_s): the violation of the load summed over many batches (Wang et al. 2024). */
export function maxVioGlobal(loads: ArrayLike<ArrayLike<number>>): number {
  if (loads.length < 1) throw new Error('maxVioGlobal: need at least one step of load, got 0');
  const E = loads[0].length;
  const total = new Array<number>(E).fill(0);
  for (let s = 0; s < loads.length; s++) {
    if (loads[s].length !== E) throw new Error(`maxVioGlobal: step ${s} has ${loads[s].length} experts, step 0 has ${E}`);
    checkLoad(loads[s], `maxVioGlobal (step ${s})`);
    for (let i = 0; i < E; i++) total[i] += loads[s][i];
  }
  return maxVio(total);
}

/** dropped fraction = dropped / assignments (0 when assignments = 0). */
export function droppedFraction(dropped: number, assignments: number): number {
  if (!Number.isFinite(assignments) || assignments < 0) throw new Error(`droppedFraction: assignments must be a finite number ≥ 0, got ${assignments}`);
  if (!Number.isFinite(dropped) || dropped < 0 || dropped > assignments) throw new Error(`droppedFraction: dropped must be in [0, assignments = ${assignments}], got ${dropped}`);
  return assignments > 0 ? dropped / assignments : 0;
}

/** H_norm = H / ln E for the mean router entropy H in nats: 1 = uniform routing, 0 = one-hot (0 when E = 1). */
export function routerEntropyNormalized(entropyNats: number, numExperts: number): number {
  if (!Number.isInteger(numExperts) || numExperts < 1) throw new Error(`routerEntropyNormalized: numExperts must be a positive integer, got ${numExperts}`);
  const hMax = Math.log(numExperts);
  // 1e-6 of slack: the entropy comes from float32 sums and may sit a hair outside [0, ln E].
  if (!Number.isFinite(entropyNats) || entropyNats < -1e-6 || entropyNats > hMax + 1e-6 * Math.max(1, hMax)) {
    throw new Error(`routerEntropyNormalized: entropyNats must be in [0, ln ${numExperts} = ${hMax}], got ${entropyNats}`);
  }
  return numExperts === 1 ? 0 : Math.min(1, Math.max(0, entropyNats / hMax));
}

/**
 * Expert utilization ("专家利用率", the share of an expert's capacity actually used):
 *   u_i = load_i / C,  C = capacity in assignments per expert (MoEStats.capacity);
 *   dropless (capacity null): C = Σ_j load_j / E, the capacity at factor 1 without rounding, so u_i = E · share_i.
 * With a drop policy load_i ≤ C and u_i ∈ [0, 1]; dropless u has mean 1 and may exceed 1.
 * (All zeros when C = 0.)
 */
export function expertUtilization(load: ArrayLike<number>, capacity: number | null): number[] {
  const sum = checkLoad(load, 'expertUtilization');
  if (capacity !== null && !(Number.isFinite(capacity) && capacity > 0)) throw new Error(`expertUtilization: capacity must be a positive number or null (dropless), got ${capacity}`);
  const C = capacity ?? sum / load.length;
  return Array.from(load, (v) => (C > 0 ? v / C : 0));
}

/**
 * Utilization std, seed 000's "专家利用率标准差" column: σ(u) with u_i = load_i / C from expertUtilization,
 * population std (ddof 0, MindSpore's ops.std default; seed 000 is MindSpore). Seed 000 prints no formula
 * for this column, so this is our reading of the column's name. Dropless: σ(u) = CV (C = mean load).
 */
export function utilizationStd(load: ArrayLike<number>, capacity: number | null, ddof: 0 | 1 = 0): number {
  return std(expertUtilization(load, capacity), ddof);
}

/**
 * Seed 004's per-expert utilization (MoETrainingSystem.calculate_expert_utilization):
 *   u_i = (assignments to expert i) / (tokens seen) = load_i / T;  Σ_i u_i = k for top-k without drops.
 * Seed 004's gradient reweighting thresholds (u < 0.1 → ×2.0, u > 0.9 → ×0.5) apply to this quantity.
 */
export function tokenUtilization(load: ArrayLike<number>, numTokens: number): number[] {
  checkLoad(load, 'tokenUtilization');
  if (!(Number.isFinite(numTokens) && numTokens > 0)) throw new Error(`tokenUtilization: numTokens must be a positive number, got ${numTokens}`);
  return Array.from(load, (v) => v / numTokens);
}

/** Seed 004 §5.2's system-level utilization: active experts / E = |{i : load_i > 0}| / E (ideal 1.0). */
export function activeExpertFraction(load: ArrayLike<number>): number {
  checkLoad(load, 'activeExpertFraction');
  let active = 0;
  for (let i = 0; i < load.length; i++) if (load[i] > 0) active++;
  return active / load.length;
}

export interface LoadSummaryOptions {
  /** capacity in assignments per expert (MoEStats.capacity); null or absent = dropless. */
  capacity?: number | null;
  /** assignments dropped in the batch (MoEStats.dropped). */
  dropped?: number;
  /** assignments the router made (MoEStats.assignments); default Σ load + dropped. */
  assignments?: number;
  /** mean router entropy in nats (MoEStats.entropy). */
  entropy?: number;
}

/** Every balance metric of one layer's batch. */
export interface LoadSummary {
  experts: number;
  /** Σ load: assignments computed. */
  computed: number;
  share: number[];
  cv: number;
  maxLoadShare: number;
  maxVio: number;
  activeFraction: number;
  utilization: number[];
  utilizationStd: number;
  /** null when `dropped` was not given. */
  droppedFraction: number | null;
  /** H / ln E; null when `entropy` was not given. */
  entropyNormalized: number | null;
}

/** All of the metrics above for one layer's load. */
export function summarizeLoad(load: ArrayLike<number>, opts: LoadSummaryOptions = {}): LoadSummary {
  const computed = checkLoad(load, 'summarizeLoad');
  const capacity = opts.capacity ?? null;
  let dropFrac: number | null = null;
  if (opts.dropped !== undefined || opts.assignments !== undefined) {
    const dropped = opts.dropped ?? 0;
    dropFrac = droppedFraction(dropped, opts.assignments ?? computed + dropped);
  }
  return {
    experts: load.length,
    computed,
    share: loadShare(load),
    cv: loadCv(load),
    maxLoadShare: maxLoadShare(load),
    maxVio: maxVio(load),
    activeFraction: activeExpertFraction(load),
    utilization: expertUtilization(load, capacity),
    utilizationStd: utilizationStd(load, capacity),
    droppedFraction: dropFrac,
    entropyNormalized: opts.entropy === undefined ? null : routerEntropyNormalized(opts.entropy, load.length),
  };
}

/** The scalar metrics of LoadSummary, aggregated over layers. */
export interface LayerAggregate {
  cv: number;
  maxLoadShare: number;
  maxVio: number;
  utilizationStd: number;
  droppedFraction: number | null;
  entropyNormalized: number | null;
}

export interface LayersSummary {
  layers: LoadSummary[];
  /** arithmetic mean over layers (the scalars metrics.jsonl records). */
  mean: LayerAggregate;
  /** the worst layer for each metric (max; entropy: min). */
  worst: LayerAggregate;
}

/** Per-layer summaries plus mean and worst over layers; opts is shared by all layers or given per layer. */
export function summarizeLayers(perLayerLoad: ArrayLike<ArrayLike<number>>, opts: LoadSummaryOptions | LoadSummaryOptions[] = {}): LayersSummary {
  const L = perLayerLoad.length;
  if (L < 1) throw new Error('summarizeLayers: need at least one layer, got 0');
  if (Array.isArray(opts) && opts.length !== L) throw new Error(`summarizeLayers: got ${opts.length} option sets for ${L} layers`);
  const layers = Array.from(perLayerLoad, (load, l) => summarizeLoad(load, Array.isArray(opts) ? opts[l] : opts));
  const col = (f: (s: LoadSummary) => number) => layers.map(f);
  const nullable = (f: (s: LoadSummary) => number | null, agg: (xs: number[]) => number): number | null => {
    const xs = layers.map(f);
    return xs.every((x): x is number => x !== null) ? agg(xs) : null;
  };
  const max = (xs: number[]) => Math.max(...xs);
  const min = (xs: number[]) => Math.min(...xs);
  const aggregate = (agg: (xs: number[]) => number, entropyAgg: (xs: number[]) => number): LayerAggregate => ({
    cv: agg(col((s) => s.cv)),
    maxLoadShare: agg(col((s) => s.maxLoadShare)),
    maxVio: agg(col((s) => s.maxVio)),
    utilizationStd: agg(col((s) => s.utilizationStd)),
    droppedFraction: nullable((s) => s.droppedFraction, agg),
    entropyNormalized: nullable((s) => s.entropyNormalized, entropyAgg),
  });
  return { layers, mean: aggregate(mean, mean), worst: aggregate(max, min) };
}
