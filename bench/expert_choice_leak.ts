/**
 * What expert choice's look-ahead is worth at validation: trains configs/tiny.yaml with expert choice
 * (capacity factor 1, no aux loss) for N steps, then evaluates the same model twice on the same
 * validation batches — causally (each token its own top-k experts, what `evaluate` does) and with expert
 * choice over the whole batch (each expert ranking every token, later ones included). Prints one JSON line.
 * Run: `node bin/run-ts.js bench/expert_choice_leak.ts [steps=300]` (≈1 min on a quiet 2-core machine).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { loadConfig } from '../src/config/load.ts';
import { evaluate } from '../src/train/evaluate.ts';
import { openTrainer } from '../src/train/run.ts';
import { forwardBatch } from '../src/train/step.ts';

const steps = Number(process.argv[2] ?? 300);
const sets = ['router.type=expert_choice', 'capacity_factor=1', 'aux_loss.type=none', `steps=${steps}`, 'eval_batches=8'];
const cfg = loadConfig(path.join(import.meta.dirname, '..', 'configs', 'tiny.yaml'), sets);
await initBackend(cfg.backend);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-ec-leak-'));
const t = openTrainer(cfg, dir);
const t0 = performance.now();
for (let i = 0; i < steps; i++) await t.trainStep();
const causal = (await evaluate(t.model, t.data)).loss;
// training: true routes expert choice over the whole batch, as in training (no other layer differs in training mode)
const batches = t.data.validation();
let sum = 0;
for (const b of batches) {
  const out = await forwardBatch(t.model, b, () => ({ training: true }));
  sum += (await out.loss.data())[0];
  tf.dispose([out.loss, out.output, ...out.moe.flatMap((m) => [m.y, ...Object.values(m.aux), m.stats.meanProbs, m.stats.entropy])] as tf.Tensor[]);
}
t.dispose();
fs.rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({
  config: `configs/tiny.yaml + ${sets.join(' ')}`, val_batches: batches.length,
  val_loss_causal: +causal.toFixed(4), val_loss_whole_batch_expert_choice: +(sum / batches.length).toFixed(4),
  seconds: +((performance.now() - t0) / 1000).toFixed(1),
}));
