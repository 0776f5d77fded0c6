import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect } from 'vitest';
import { runCompare, endOfRunBalance, compareMarkdown, type MethodResult } from '../src/compare/compare.ts';
import { methodOverrides, METHODS } from '../src/compare/methods.ts';
import { parseConfig } from '../src/config/load.ts';
import { applyOverrides } from '../src/config/overrides.ts';
import { readMetrics, type MetricRecord } from '../src/metrics/jsonl.ts';

describe('compare', () => {
  it('every method is a valid config over seed000.yaml and switches its own balancing on', () => {
    for (const m of Object.keys(METHODS)) {
      const cfg = parseConfig(applyOverrides({ model_type: 'moe_mlp', data: { source: 'synthetic' }, batch_size: 4, seq_len: 10, dim: 16 }, methodOverrides(m)));
      if (m === 'none') expect(cfg.use_load_balance).toBe(false);
      if (m === 'aux_free') expect([cfg.balance.aux_free.enabled, cfg.aux_loss.type]).toEqual([true, 'none']);
      if (m === 'expert_choice') expect(cfg.router.type).toBe('expert_choice');
    }
    expect(() => methodOverrides('magic')).toThrow(/unknown method 'magic'/);
  });

  it('end-of-run balance averages the window and counts experts idle throughout', () => {
    const rec = (load: number[], cv: number) => ({ expert_load: [load], load_cv: cv, max_load_share: 0.5, maxvio: 1, dropped_fraction: 0.1 }) as unknown as MetricRecord;
    const b = endOfRunBalance([rec([9, 9, 0, 0], 9), rec([4, 0, 4, 0], 1), rec([5, 0, 3, 0], 3)], 2);
    expect(b.load_cv).toBe(2); // (1 + 3) / 2: the first record is outside the window
    expect(b.dead_experts).toBe(2); // experts 1 and 3 had no tokens in both window steps
  });

  it('runs methods × seeds and writes compare.json in the documented shape', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-compare-'));
    const results = await runCompare({ config: 'configs/seed000.yaml', methods: ['none', 'aux_free'], seeds: 2, out, sets: ['steps=30', 'dim=32', 'expert_hidden=64'] });
    const json = JSON.parse(fs.readFileSync(path.join(out, 'compare.json'), 'utf8'));
    expect(json.methods.map((m: { method: string }) => m.method)).toEqual(['none', 'aux_free']);
    // Every number recomputed here from the runs' own files: summary.json for losses and step times, metrics.jsonl
    // for balance over the last `window` logged steps (finite: NaN or a missing field fails).
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const sampleStd = (xs: number[]) => Math.sqrt(xs.reduce((a, x) => a + (x - avg(xs)) ** 2, 0) / (xs.length - 1));
    const runOf = (m: string, s: number) => {
      const dir = path.join(out, 'runs', `${m}-seed${s}`);
      return { summary: JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')), recs: readMetrics(path.join(dir, 'metrics.jsonl')) };
    };
    expect(json.window).toBe(6); // 20% of 30 steps
    for (const m of json.methods) {
      const runs = [0, 1].map((s) => runOf(m.method, s));
      const ref = [0, 1].map((s) => runOf('none', s));
      const tails = runs.map((r) => r.recs.slice(-json.window));
      const want: Record<string, number> = {
        final_loss: avg(runs.map((r) => r.summary.final_loss)),
        final_loss_std: sampleStd(runs.map((r) => r.summary.final_loss)),
        load_cv: avg(tails.map((t) => avg(t.map((r) => r.load_cv)))),
        max_load_share: avg(tails.map((t) => avg(t.map((r) => r.max_load_share)))),
        maxvio: avg(tails.map((t) => avg(t.map((r) => r.maxvio)))),
        dropped_fraction: 0, // dropless config: nothing is dropped
        dead_experts: avg(tails.map((t) => t[0].expert_load[0].filter((_, e) => t.every((r) => r.expert_load[0][e] === 0)).length)),
        step_time_ratio: avg(runs.map((r, i) => r.summary.step_time_ms / ref[i].summary.step_time_ms)),
      };
      for (const [k, v] of Object.entries(want)) {
        expect(Number.isFinite(m[k]), `${m.method}.${k} = ${m[k]}`).toBe(true);
        expect(m[k], `${m.method}.${k}`).toBeCloseTo(v, 10);
      }
      expect(m.final_loss_std).toBeGreaterThan(0); // two seeds train differently
      expect(m.max_load_share).toBeGreaterThanOrEqual(1 / 8);
      expect(m.max_load_share).toBeLessThanOrEqual(1);
    }
    expect(json.methods[0].step_time_ratio).toBe(1); // none is the reference
    expect(fs.readdirSync(path.join(out, 'runs')).sort()).toEqual(['aux_free-seed0', 'aux_free-seed1', 'none-seed0', 'none-seed1']);
    expect(fs.readFileSync(path.join(out, 'compare.md'), 'utf8')).toContain('| aux_free |');
    expect(results[1].maxvio).toBeLessThan(results[0].maxvio); // the aux-free bias evens the load of the same model
  });

  it("marks expert choice's training loss as non-causal in compare.md and compare.json", () => {
    const r = (method: string): MethodResult => ({ method, final_loss: 2.3, final_loss_std: 0, val_loss: 2.35, load_cv: 0.1, max_load_share: 0.2, maxvio: 0.3, dropped_fraction: 0, dead_experts: 0, step_time_ratio: 1, step_time_ms: 10, causal: METHODS[method].causal !== false });
    expect(r('expert_choice').causal).toBe(false);
    expect(['none', 'switch', 'aux_free', 'sinkhorn'].map((m) => r(m).causal)).toEqual([true, true, true, true]);
    const md = compareMarkdown([r('none'), r('expert_choice')], { config: 'c.yaml', seeds: 1 }, 5, 10);
    expect(md).toContain('| expert_choice † | 2.30 ± 0.00 |');
    expect(md).toContain('| none | 2.30 ± 0.00 |');
    expect(md).toMatch(/† expert choice: .*later tokens.*training loss.*validation loss.*causal/);
    expect(compareMarkdown([r('none')], { config: 'c.yaml', seeds: 1 }, 5, 10)).not.toContain('†');
  });

  it('names the command that reproduces it: methods, seeds and every --set', () => {
    const r: MethodResult = { method: 'none', final_loss: 2.3, final_loss_std: 0, val_loss: 2.35, load_cv: 0.1, max_load_share: 0.2, maxvio: 0.3, dropped_fraction: 0, dead_experts: 0, step_time_ratio: 1, step_time_ms: 10, causal: true };
    const md = compareMarkdown([r], { config: 'c.yaml', seeds: 2, methods: ['none', 'switch'], sets: ['steps=200', 'router.type=sinkhorn'] }, 5, 10);
    expect(md.split('\n')[0]).toContain('`switchyard compare --config c.yaml --methods none,switch --seeds 2 --set steps=200 --set router.type=sinkhorn`');
  });

  it('compare.json carries the causal flag and, for expert choice, the note', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-compare-'));
    await runCompare({ config: 'configs/seed000.yaml', methods: ['none', 'expert_choice'], seeds: 1, out, sets: ['steps=3', 'dim=16', 'expert_hidden=16'] });
    const json = JSON.parse(fs.readFileSync(path.join(out, 'compare.json'), 'utf8'));
    expect(json.methods.map((m: { causal: boolean }) => m.causal)).toEqual([true, false]);
    expect(json.notes.expert_choice).toMatch(/later tokens/);
  });
});
