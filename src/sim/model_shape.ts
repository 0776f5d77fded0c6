/**
 * The MoE layer shape the simulator prices: tokens per GPU, hidden size, experts, top-k, expert FFN size, layers,
 * bytes per element of the dispatched and combined activations. YAML file and/or CLI flags (flags win).
 */
import { MAX_EXPERTS, MAX_LAYERS, MAX_TOP_K } from '../limits.ts';
import { readRegularText } from '../io/regular_file.ts';
import { z } from 'zod';
import { parseYaml } from './topology.ts';

export const ModelShapeSchema = z.strictObject({
  /** Tokens entering the MoE layer on each GPU per step (micro-batch × sequence, after attention). */
  tokens_per_gpu: z.int().min(1).max(1e9),
  hidden: z.int().min(1).max(1 << 20),
  experts: z.int().min(1).max(MAX_EXPERTS),
  top_k: z.int().min(1).max(MAX_TOP_K),
  /** Intermediate size of one expert's FFN. */
  expert_ffn: z.int().min(1).max(1 << 20),
  layers: z.int().min(1).max(MAX_LAYERS).default(1),
  /** SwiGLU/GeGLU experts have 3 matrices (gate, up, down), plain FFN 2 (default true). */
  gated: z.boolean().default(true),
  /** Bytes per element sent in dispatch (1 = FP8, 2 = BF16) and in combine (default: dispatch_bytes). */
  dispatch_bytes: z.number().positive().max(64).default(2),
  combine_bytes: z.number().positive().max(64).optional(),
  /** Most chunks of the chunked dispatch–compute–combine pipeline; the best power of two up to it is used (default 8). */
  overlap_chunks: z.int().min(1).max(4096).default(8),
  /** Physical expert slots per GPU (default: ⌈experts / GPUs⌉; extra slots hold replicas). */
  slots_per_gpu: z.int().min(1).max(MAX_EXPERTS).optional(),
});

export type ModelShapeConfig = z.infer<typeof ModelShapeSchema>;

/** The model shape in the units the cost model uses. */
export interface ModelShape {
  tokensPerGpu: number;
  hidden: number;
  experts: number;
  topK: number;
  expertFfn: number;
  layers: number;
  /** FLOPs per routed token per expert: 2 · matrices · hidden · expert_ffn. */
  flopsPerAssignment: number;
  dispatchBytes: number;
  combineBytes: number;
  chunks: number;
  slotsPerGpu?: number;
}

/** Converts the YAML form; checks top_k ≤ experts. */
export function toModelShape(c: ModelShapeConfig): ModelShape {
  if (c.top_k > c.experts) throw new Error(`top_k ${c.top_k} exceeds experts ${c.experts}`);
  return {
    tokensPerGpu: c.tokens_per_gpu,
    hidden: c.hidden,
    experts: c.experts,
    topK: c.top_k,
    expertFfn: c.expert_ffn,
    layers: c.layers,
    flopsPerAssignment: 2 * (c.gated ? 3 : 2) * c.hidden * c.expert_ffn,
    dispatchBytes: c.dispatch_bytes,
    combineBytes: c.combine_bytes ?? c.dispatch_bytes,
    chunks: c.overlap_chunks,
    slotsPerGpu: c.slots_per_gpu,
  };
}

/** Reads a model YAML (optional) and applies flag overrides (snake_case keys of the schema). */
export async function readModelShape(path: string | undefined, overrides: Partial<ModelShapeConfig>): Promise<ModelShape> {
  let base: Record<string, unknown> = {};
  const source = path ?? 'model flags';
  if (path) {
    const text = readRegularText(path, 1 << 20, 'model file');
    base = parseYaml(text, z.record(z.string(), z.unknown()), path);
  }
  const merged = { ...base, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
  return toModelShape(parseYaml(JSON.stringify(merged), ModelShapeSchema, source));
}
