/**
 * Parallelism for the Trainer in Node: expert parallelism reads the planner's placement file (parallel.placement)
 * and starts the worker threads (src/parallel/) that own the routed experts, their gradients and their AdamW;
 * data parallelism starts worker threads with full replicas.
 */
import type { Config } from '../config/schema.ts';
import type { MoELayer } from '../moe/layer.ts';
import { DataParallel } from '../parallel/data_parallel.ts';
import { ExpertParallel } from '../parallel/expert_parallel.ts';
import { placementFromPhy2Log } from '../parallel/placement.ts';
import { readPlacement } from '../plan/placement_io.ts';
import type { DataParallelBridge, ExpertParallelBridge } from './env.ts';

/** Worker threads for parallel.ep_size ranks, started from the layers' current expert weights. */
export async function startExpertParallel(cfg: Config, layers: MoELayer[]): Promise<ExpertParallelBridge> {
  const p = cfg.parallel;
  const E = layers[0].config.numExperts;
  const placement = p.placement ? placementFromPhy2Log((await readPlacement(p.placement))[0], E, p.ep_size) : undefined;
  const ep = new ExpertParallel({
    epSize: p.ep_size, nodes: p.nodes, mode: p.mode, chunks: p.chunks, placement,
    layerWeights: layers.map((l) => l.experts), activation: layers[0].config.activation,
    adamw: { beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weight_decay },
    backend: cfg.backend === 'cpu' ? 'cpu' : 'wasm', recompute: cfg.recompute,
  });
  await ep.ready();
  return ep;
}

/** Worker threads for parallel.dp_size ranks (rank 0 is the caller), each with a replica of cfg's model. */
export async function startDataParallel(cfg: Config, size: number, vocab: number, sizes: { weights: number; grads: number }): Promise<DataParallelBridge> {
  return DataParallel.start(cfg, size, vocab, sizes);
}
