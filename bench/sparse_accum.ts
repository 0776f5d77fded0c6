/**
 * Sparse expert gradient accumulation (seed 004) vs plain accumulation, on a router left unbalanced
 * (no aux loss): final loss, load CV, and how often the cold experts are updated.
 * Run alone: npm run bench -- --only sparse_accumulation
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/config/load.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';
import { train } from '../src/train/run.ts';

export async function benchSparseAccumulation(): Promise<Record<string, unknown>> {
  const base = {
    layers: 2, dim: 64, heads: 4, expert_num: 8, top_k: 1, expert_hidden: 64, seq_len: 16, batch_size: 2, grad_accum_steps: 4,
    steps: 120, eval_every: 120, log_every: 1, checkpoint_every: 0, warmup_steps: 10, lr: 3e-3,
    aux_loss: { type: 'none' }, data: { source: 'nlp-corpus', max_chars: 400_000 },
  };
  const out: Record<string, unknown> = {};
  for (const sparse of [false, true]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-sparse-'));
    const s = await train(parseConfig({ ...base, balance: { sparse_accumulation: { enabled: sparse, min_active_share: 0.5 } } }), { outDir: dir });
    const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
    // an expert is "cold" in a step when it got under half its fair share of the step's assignments
    let cold = 0;
    let coldUpdated = 0;
    for (const r of recs) {
      const frozen = (r as unknown as { sparse_frozen?: number[][] }).sparse_frozen;
      r.expert_load.forEach((load, l) => {
        const fair = load.reduce((a, b) => a + b, 0) / load.length;
        load.forEach((c, e) => {
          if (c >= fair / 2) return;
          cold++;
          if (!(frozen?.[l] ?? []).includes(e)) coldUpdated++;
        });
      });
    }
    const tail = recs.slice(-24);
    out[sparse ? 'sparse' : 'plain'] = {
      final_loss: s.final_loss, val_loss: s.val_loss,
      load_cv: tail.reduce((a, r) => a + r.load_cv, 0) / tail.length,
      cold_expert_steps: cold, cold_expert_update_rate: cold ? coldUpdated / cold : null,
    };
  }
  return out;
}
