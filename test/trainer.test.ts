import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { it, expect } from 'vitest';
import { parseConfig, type Config } from '../src/config/load.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';
import { openTrainer, train } from '../src/train/run.ts';
import { addReadouts, type Trainer } from '../src/train/step.ts';
import { describeBackends, expectClose, randomArray } from './helpers.ts';

/** A model small enough for unit tests: 1 block, 4 experts, 16-byte sequences, 200 kB of the corpus. */
export function smallConfig(over: Record<string, unknown> = {}): Config {
  return parseConfig({
    layers: 1, dim: 32, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 32, seq_len: 16, batch_size: 4,
    steps: 6, eval_every: 0, log_every: 1, checkpoint_every: 0, warmup_steps: 0, lr: 3e-3,
    data: { source: 'nlp-corpus', max_chars: 200_000 },
    ...over,
  });
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sy-train-'));

describeBackends('trainer', (backend) => {
  it('two micro-batches of 2 give the same gradients and balance losses as one batch of 4', async () => {
    for (const aux of ['switch', 'kl', 'cv2']) {
      const big = openTrainer(smallConfig({ backend, aux_loss: { type: aux, weight: 0.5 }, z_loss_weight: 0.01 }), tmp());
      const small = openTrainer(smallConfig({ backend, aux_loss: { type: aux, weight: 0.5 }, z_loss_weight: 0.01, batch_size: 2, grad_accum_steps: 2 }), tmp());
      for (const [name, v] of Object.entries(big.model.params)) small.model.params[name].assign(v);
      const b4 = big.data.next(big.dataRng);
      const b2a = small.data.next(small.dataRng);
      const b2b = small.data.next(small.dataRng);
      // same windows: two draws of 2 are one draw of 4
      expect(Array.from(b4.inputs)).toEqual([...Array.from(b2a.inputs), ...Array.from(b2b.inputs)]);
      const one = await big.accumulateGradients([b4]);
      const two = await small.accumulateGradients([b2a, b2b]);
      for (const a of [one, two]) {
        addReadouts(a.res, await tf.concat(a.readouts).data(), a.readouts.length, a.auxNames);
        tf.dispose(a.readouts);
      }
      expect(two.res.loss).toBeCloseTo(one.res.loss, 5);
      expect(two.res.aux[aux]).toBeCloseTo(one.res.aux[aux], 5);
      expect(Array.from(two.res.loads[0])).toEqual(Array.from(one.res.loads[0]));
      for (const [name, v] of Object.entries(big.model.params)) {
        expectClose(two.grads[small.model.params[name].name].dataSync(), one.grads[v.name].dataSync(), 1e-6, 2e-3);
      }
      tf.dispose([...Object.values(one.grads), ...Object.values(two.grads)]);
      big.dispose();
      small.dispose();
    }
  });

  it('lowers the loss, logs every step, and checkpoints the last step', async () => {
    const dir = tmp();
    const s = await train(smallConfig({ backend, steps: 25, checkpoint_every: 10 }), { outDir: dir });
    expect(s.final_loss).toBeLessThan(s.first_loss - 0.5);
    const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
    expect(recs.map((r) => r.step)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    for (const r of recs) {
      expect(r.expert_load[0].reduce((a, b) => a + b, 0)).toBe(4 * 16 * 2); // dropless: every assignment computed
      expect(Number.isFinite(r.load_cv) && Number.isFinite(r.maxvio)).toBe(true);
    }
    // the newest checkpoint is the last step's
    const t = openTrainer(smallConfig({ backend, steps: 25 }), dir);
    expect(t.restore()).toBe(25);
    expect((await t.optimizer.getState()).step).toBe(25);
    t.dispose();
  });

  it('restore loads exactly what was saved into a model whose weights and moments were changed', async () => {
    const dir = tmp();
    const a = openTrainer(smallConfig({ backend, steps: 25 }), dir);
    for (let i = 0; i < 3; i++) await a.trainStep();
    await a.save();
    const snap = (tr: Trainer) => Object.fromEntries(Object.entries({ ...tr.model.params, ...tr.model.buffers() }).map(([k, v]) => [k, Array.from(v.dataSync())]));
    // optimizer moments are keyed by tfjs variable names, which differ between trainers: key them by parameter name
    const moments = async (tr: Trainer) => {
      const o = await tr.optimizer.getState();
      const by = (r: Record<string, Float32Array>) => Object.fromEntries(Object.entries(tr.model.params).map(([k, v]) => [k, Array.from(r[v.name])]));
      return { step: o.step, m: by(o.m), v: by(o.v) };
    };
    const saved = { params: snap(a), opt: await moments(a), state: a.state() };
    a.dispose();
    // Same seed: a fresh trainer starts from the initial weights; move them and the moments away from those too.
    const b = openTrainer(smallConfig({ backend, steps: 25 }), dir);
    const vars = { ...b.model.params, ...b.model.buffers() };
    Object.values(vars).forEach((v, i) => v.assign(tf.tidy(() => tf.add(v, tf.tensor(randomArray(v.size, 100 + i, 0.5), v.shape)))));
    const st = await b.optimizer.getState();
    const noise = (r: Record<string, Float32Array>, seed: number) => Object.fromEntries(Object.entries(r).map(([k, x], i) => [k, randomArray(x.length, seed + i, 1)]));
    b.optimizer.setState({ step: 7, m: noise(st.m, 300), v: noise(st.v, 500) });
    for (const [k, w] of Object.entries(snap(b))) expect(w, k).not.toEqual(saved.params[k]);
    expect(await moments(b)).not.toEqual(saved.opt);
    expect(b.restore()).toBe(3);
    for (const [k, w] of Object.entries(snap(b))) expect(w, k).toEqual(saved.params[k]);
    expect(await moments(b)).toEqual(saved.opt);
    expect(b.state()).toEqual(saved.state); // step, RNG streams, controllers, NaN counters
    b.dispose();
  });

  it('skips non-finite steps, counts them, and stops after max_nan_steps in a row', async () => {
    const dir = tmp();
    const s = await train(smallConfig({ backend, steps: 8 }), { outDir: dir, poisonStep: (st) => st === 2 || st === 3 });
    expect(s.skipped_steps).toBe(2);
    expect(Number.isFinite(s.final_loss)).toBe(true);
    const lines: string[] = [];
    await expect(train(smallConfig({ backend, steps: 10, max_nan_steps: 3, checkpoint_every: 2 }), { outDir: tmp(), poisonStep: (st) => st >= 4, log: (l) => lines.push(l) }))
      .rejects.toThrow(/3 non-finite steps in a row \(max_nan_steps = 3\)/);
    expect(lines.filter((l) => l.includes('update skipped')).length).toBe(3);
  });
});

describeBackends('trainer with balance controllers', (backend) => {
  it('aux-free bias and sparse accumulation run inside training and are logged', async () => {
    const dir = tmp();
    const s = await train(smallConfig({
      backend, steps: 6, grad_accum_steps: 2, batch_size: 2,
      balance: { aux_free: { enabled: true, update_rate: 0.01 }, sparse_accumulation: { enabled: true, min_active_share: 0.5 } },
    }), { outDir: dir });
    expect(Number.isFinite(s.final_loss)).toBe(true);
    const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
    const biases = recs.map((r) => (r as unknown as Record<string, number[]>).aux_free_bias_absmax);
    for (const b of biases) expect(b).toHaveLength(1); // one MoE layer
    expect(biases[0][0]).toBeCloseTo(0.01, 6); // step 1: every bias moved by exactly u
    expect(Math.max(...biases.map((b) => b[0]))).toBeGreaterThan(0);
  });
});

describeBackends('untrusted checkpoints', (backend) => {
  it('refuses a checkpoint of another model shape, and a corrupt state.json, naming the file and field', async () => {
    const dir = tmp();
    await train(smallConfig({ backend, steps: 2 }), { outDir: dir });
    const other = openTrainer(smallConfig({ backend, steps: 2, expert_num: 8 }), dir);
    expect(() => other.restore()).toThrow(/checkpoint was made with expert_num = 4, but the model has expert_num = 8/);
    other.dispose();
    const state = path.join(dir, 'checkpoints', 'step-00000002', 'state.json');
    const good = fs.readFileSync(state, 'utf8');
    for (const [bad, why] of [['{"step": -1}', /field 'step'/], ['[1,2]', /field '\(root\)'/], ['{nope', /not JSON/],
      [good.replace(/"nanStreak":\s*\d+/, '"nanStreak": "x"'), /field 'nanStreak'/]] as const) {
      fs.writeFileSync(state, bad);
      const t = openTrainer(smallConfig({ backend, steps: 2 }), dir);
      expect(() => t.restore()).toThrow(new RegExp(`state\\.json: .*${why.source}`));
      t.dispose();
    }
  });
});
