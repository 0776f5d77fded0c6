/**
 * The CLI end to end, as a user runs it (`node bin/switchyard.js …` in a child process): demo, eval and generate;
 * train --report and keep_checkpoints pruning; the stop after max_nan_steps; checkpoint folders that a kill leaves
 * whole or absent; the second Ctrl-C; plan --cross-node. Runs are a few steps of small models.
 * Faults (a kill at an exact rename, a long step) come from test/fixtures/cli/faults.mjs, preloaded into the child.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it, expect, beforeAll } from 'vitest';
import { tinyLmYaml } from './helpers.ts';
import { readSafetensorsFile } from '../src/io/safetensors.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';

const CLI = path.resolve('bin/switchyard.js');
const FAULTS = pathToFileURL(path.resolve('test/fixtures/cli/faults.mjs')).href;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-cli-'));

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
interface RunOptions { env?: Record<string, string>; faults?: boolean; onSpawn?: (pid: number) => void }

/** Runs `switchyard ...args` to its end (async, so several can run at once). */
function cli(args: string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const node = opts.faults ? ['--import', FAULTS] : [];
    const child = spawn(process.execPath, [...node, CLI, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    opts.onSpawn?.(child.pid!);
  });
}
const show = (r: Run) => `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** A one-block LM on 200 kB of the corpus: a step takes milliseconds. */
const SMALL = tinyLmYaml({ dim: 32, expert_hidden: 32, batch_size: 4, steps: 6, checkpoint_every: 1, eval_batches: undefined, lr: 3.0e-3, data: { source: 'nlp-corpus', max_chars: 200000 } });
const config = fs.mkdtempSync(path.join(tmp, 'cfg-')) + '/small.yaml';
fs.writeFileSync(config, SMALL);

const checkpointsOf = (run: string) => (fs.existsSync(path.join(run, 'checkpoints')) ? fs.readdirSync(path.join(run, 'checkpoints')).sort() : []);
const step = (n: number) => `step-${String(n).padStart(8, '0')}`;

describe('demo, then eval and generate on its run folder', () => {
  const run = path.join(tmp, 'demo');
  let demo: Run;
  beforeAll(async () => {
    demo = await cli(['demo', '--out', run, '--set', 'steps=20', '--set', 'warmup_steps=2', '--set', 'eval_every=10', '--set', 'log_every=1', '--set', 'checkpoint_every=10']);
  }, 180_000);

  it('demo trains configs/tiny.yaml: the printed summary is the run\'s, the loss falls, checkpoints and validation where asked', () => {
    expect(demo.code, show(demo)).toBe(0);
    const lines = demo.stdout.split('\n');
    expect(lines[0]).toBe('switchyard demo: 2-layer MoE LM (8 experts, top-2) on nlp-corpus, 20 steps, backend wasm');
    const summary = JSON.parse(fs.readFileSync(path.join(run, 'summary.json'), 'utf8'));
    const recs = readMetrics(path.join(run, 'metrics.jsonl'));
    expect(recs.map((r) => r.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(recs.filter((r) => r.val_loss !== undefined).map((r) => r.step)).toEqual([10, 20]);
    expect(summary.first_loss).toBe(recs[0].loss);
    expect(summary.final_loss).toBe(recs[19].loss);
    expect(summary.val_loss).toBe(recs[19].val_loss);
    expect(summary.final_loss).toBeLessThan(summary.first_loss - 0.5); // 20 steps learn the byte statistics
    const printed = (label: string) => Number(new RegExp(`^${label.replace(/[()]/g, '\\$&')}\\s+(\\S+)$`, 'm').exec(demo.stdout)?.[1]);
    expect(printed('task loss (first step)')).toBeCloseTo(summary.first_loss, 4);
    expect(printed('task loss (last step)')).toBeCloseTo(summary.final_loss, 4);
    expect(printed('validation loss')).toBeCloseTo(summary.val_loss, 4);
    expect(printed('validation perplexity')).toBeCloseTo(Math.exp(summary.val_loss), 3);
    expect(printed('parameters')).toBe(summary.params);
    expect(checkpointsOf(run)).toEqual([step(10), step(20)]);
    expect(demo.stdout).toContain(`run folder: ${run}`);
  });

  it('eval restores the newest checkpoint and gives the validation loss the run logged at that step', async () => {
    const r = await cli(['eval', run]);
    expect(r.code, show(r)).toBe(0);
    const m = /^(.+) at step (\d+): val_loss (\S+) {2}perplexity (\S+)$/m.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const last = readMetrics(path.join(run, 'metrics.jsonl')).at(-1)!;
    expect([m![1], Number(m![2])]).toEqual([run, 20]);
    expect(Number(m![3])).toBeCloseTo(last.val_loss!, 4); // same weights, same held-out batches
    expect(Number(m![4])).toBeCloseTo(Math.exp(Number(m![3])), 2);
    // one row per MoE layer: max_share of 8 experts lies in [1/8, 1]
    const rows = r.stdout.split('\n').filter((l) => /^\s+[01]\s/.test(l));
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      const share = Number(row.trim().split(/\s+/).at(-2));
      expect(share).toBeGreaterThanOrEqual(0.125);
      expect(share).toBeLessThanOrEqual(1);
    }
  });

  it('generate continues the prompt: greedy is the top-1 sample, a seed repeats its text', async () => {
    const gen = (...flags: string[]) => cli(['generate', run, '--prompt', 'The ', '--tokens', '12', ...flags]);
    const [greedy, top1, s1, s1again] = await Promise.all([
      gen('--temperature', '0'), gen('--temperature', '1', '--top-k', '1', '--seed', '5'),
      gen('--temperature', '1', '--seed', '1'), gen('--temperature', '1', '--seed', '1'),
    ]);
    for (const r of [greedy, top1, s1, s1again]) {
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout.startsWith('The ')).toBe(true);
    }
    expect(top1.stdout).toBe(greedy.stdout); // the sampling path with k = 1 is the argmax path
    expect(s1again.stdout).toBe(s1.stdout);
    expect(s1.stdout).not.toBe(greedy.stdout); // sampling at temperature 1 leaves the argmax path within 12 bytes
  });
});

describe('train', () => {
  it('--report writes report.html with the run\'s losses; keep_checkpoints leaves the newest two, no temp folders', async () => {
    const run = path.join(tmp, 'report');
    const r = await cli(['train', '--config', config, '--out', run, '--set', 'keep_checkpoints=2', '--report']);
    expect(r.code, show(r)).toBe(0);
    expect(checkpointsOf(run)).toEqual([step(5), step(6)]); // six saves, four pruned
    expect(r.stdout).toContain(`report: ${path.join(run, 'report.html')}`);
    const html = fs.readFileSync(path.join(run, 'report.html'), 'utf8');
    expect(html.match(/\s(src|href)\s*=\s*["']?(https?:)?\/\/|<link\b/gi)).toBeNull(); // one offline file
    const data = JSON.parse(/<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html)![1]);
    const loss = data.charts.find((c: { id: string }) => c.id === 'loss').option.series[0].data as [number, number][];
    const recs = readMetrics(path.join(run, 'metrics.jsonl'));
    expect(loss.map(([s]) => s)).toEqual(recs.map((x) => x.step));
    loss.forEach(([, v], i) => expect(v).toBeCloseTo(recs[i].loss!, 4));
  });

  it('stops after max_nan_steps non-finite steps in a row, naming the cause; the checkpoints left hold the last good weights', async () => {
    const run = path.join(tmp, 'nan');
    // lr 1e30 without clipping: step 1 is finite and throws the weights to ~1e30, every later gradient overflows
    const r = await cli(['train', '--config', config, '--out', run, '--set', 'lr=1e30', '--set', 'grad_clip=null', '--set', 'max_nan_steps=3', '--set', 'steps=10', '--set', 'keep_checkpoints=10']);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain('switchyard: stopped: 3 non-finite steps in a row (max_nan_steps = 3); lower lr or enable grad_clip. The last good checkpoint is kept.');
    expect(r.stderr.match(/update skipped/g)).toHaveLength(3);
    const recs = readMetrics(path.join(run, 'metrics.jsonl'));
    expect(recs.map((x) => [x.step, x.grad_norm !== null && Number.isFinite(x.grad_norm)])).toEqual([[1, true], [2, false], [3, false]]);
    // steps 2 and 3 were skipped: their checkpoints hold step 1's weights and moments, bit for bit; step 4 saved nothing
    expect(checkpointsOf(run)).toEqual([step(1), step(2), step(3)]);
    const tensors = (s: number, f: string) => readSafetensorsFile(path.join(run, 'checkpoints', step(s), f)).tensors;
    for (const f of ['model.safetensors', 'optimizer.safetensors']) {
      const good = tensors(1, f);
      for (const t of Object.values(good)) expect(Array.from(t.data as Float32Array).every(Number.isFinite)).toBe(true);
      for (const s of [2, 3]) {
        const later = tensors(s, f);
        for (const [name, t] of Object.entries(good)) expect(Array.from(later[name].data as Float32Array), `${f} ${name} at step ${s}`).toEqual(Array.from(t.data as Float32Array));
      }
    }
    const state = JSON.parse(fs.readFileSync(path.join(run, 'checkpoints', step(3), 'state.json'), 'utf8'));
    expect([state.step, state.nanStreak, state.skippedSteps]).toEqual([3, 2, 2]);
  });

  it('a kill at any rename of a save leaves each checkpoint folder whole or absent, and the run resumes from the last whole one', async () => {
    // steps 4, a save every 2 steps, keep 1: renames 1-4 save step 2 (model, optimizer, state.json, folder), 5-8 step 4
    const killAt = [1, 4, 8]; // in the first file, before the first folder rename, before the second folder rename
    const runs = await Promise.all(killAt.map(async (k) => {
      const run = path.join(tmp, `kill-${k}`);
      const r = await cli(['train', '--config', config, '--out', run, '--set', 'steps=4', '--set', 'checkpoint_every=2', '--set', 'keep_checkpoints=1'],
        { faults: true, env: { SY_TEST_KILL_AT_CHECKPOINT_RENAME: String(k) } });
      return { k, run, r };
    }));
    for (const { k, run, r } of runs) {
      expect(r.signal, `kill at rename ${k}: ${show(r)}`).toBe('SIGKILL');
      const whole = checkpointsOf(run).filter((d) => d.startsWith('step-'));
      expect(whole, `kill at rename ${k}`).toEqual(k <= 4 ? [] : [step(2)]);
      for (const d of whole) {
        const dir = path.join(run, 'checkpoints', d);
        expect(fs.readdirSync(dir).sort()).toEqual(['model.safetensors', 'optimizer.safetensors', 'state.json']);
        expect(JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')).step).toBe(Number(d.slice(5)));
        expect(Object.keys(readSafetensorsFile(path.join(dir, 'model.safetensors')).tensors).length).toBeGreaterThan(0);
      }
    }
    const [none, after] = await Promise.all([cli(['train', '--resume', runs[1].run]), cli(['train', '--resume', runs[2].run])]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no checkpoint to resume from');
    expect(after.code, show(after)).toBe(0);
    expect(after.stderr).toContain('resumed from step 2');
    expect(checkpointsOf(runs[2].run).filter((d) => d.startsWith('step-'))).toEqual([step(4)]);
    expect(readMetrics(path.join(runs[2].run, 'metrics.jsonl')).map((x) => x.step)).toEqual([1, 2, 3, 4]);
  });

  it('Ctrl-C saves a checkpoint after the step; a second Ctrl-C quits at once (exit 130) without it', async () => {
    // Step 1 is held for 4 s after its metrics line (faults.mjs), so both signals arrive within one step.
    const interrupt = async (signals: number) => {
      const run = path.join(tmp, `sigint-${signals}`);
      const metrics = path.join(run, 'metrics.jsonl');
      let pid = 0;
      let ended = false;
      const done = cli(['train', '--config', config, '--out', run, '--set', 'checkpoint_every=0', '--set', 'steps=50'],
        { faults: true, env: { SY_TEST_PAUSE_AFTER_STEP: '1:4000' }, onSpawn: (p) => { pid = p; } });
      void done.then(() => { ended = true; });
      while (!(fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').includes('\n'))) {
        if (ended) throw new Error(`the run ended before step 1 was logged: ${show(await done)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      for (let i = 0; i < signals; i++) {
        process.kill(pid, 'SIGINT');
        await new Promise((r) => setTimeout(r, 300)); // separate deliveries: signals pending together merge into one
      }
      return { run, r: await done };
    };
    const [once, twice] = await Promise.all([interrupt(1), interrupt(2)]);
    expect(once.r.code, show(once.r)).toBe(0);
    expect(once.r.stderr).toContain('SIGINT: saving a checkpoint after this step');
    expect(checkpointsOf(once.run)).toEqual([step(1)]);
    expect(twice.r.code, show(twice.r)).toBe(130);
    expect(twice.r.stderr).toContain('SIGINT: saving a checkpoint after this step');
    expect(checkpointsOf(twice.run)).toEqual([]);
    expect(readMetrics(path.join(twice.run, 'metrics.jsonl')).map((x) => x.step)).toEqual([1]);
  });
});

describe('plan --cross-node', () => {
  it('keeps every expert group on EPLB\'s node unless --cross-node; balancedness recomputed from phy2log; never below EPLB', async () => {
    // 8 layers of the shipped Zipf(0.8) trace: 256 experts in 8 groups, 4 nodes × 8 GPUs, 288 slots (hierarchical policy)
    const load = path.join(tmp, 'zipf8.json');
    const weight: number[][] = JSON.parse(fs.readFileSync('test/fixtures/load/zipf0.8_58x256.json', 'utf8')).slice(0, 8);
    fs.writeFileSync(load, JSON.stringify(weight));
    const R = 288, G = 32, N = 4, E = 256, groups = 8;
    const plan = async (name: string, ...flags: string[]) => {
      const out = path.join(tmp, `${name}.json`);
      const r = await cli(['plan', '--load', load, '--replicas', String(R), '--groups', String(groups), '--nodes', String(N), '--gpus', String(G), '--out', out, ...flags]);
      expect(r.code, show(r)).toBe(0);
      return { r, p: JSON.parse(fs.readFileSync(out, 'utf8')) };
    };
    const [eplb, kept, cross] = await Promise.all([plan('eplb', '--method', 'eplb'), plan('kept'), plan('cross', '--cross-node')]);
    const nodeOfSlot = (s: number) => Math.floor(s / (R / N));
    /** node of each group's replicas, or -1 where a group spans nodes. */
    const groupNodes = (phy2log: number[]) => Array.from({ length: groups }, (_, g) => {
      const nodes = new Set(phy2log.map((e, s) => [e, s]).filter(([e]) => Math.floor(e / (E / groups)) === g).map(([, s]) => nodeOfSlot(s)));
      return nodes.size === 1 ? [...nodes][0] : -1;
    });
    let spans = 0;
    for (const { p } of [eplb, kept, cross]) {
      expect(p.policy).toBe('hierarchical');
      p.phy2log.forEach((row: number[], l: number) => {
        const cnt = new Array(E).fill(0);
        row.forEach((e) => cnt[e]++);
        expect(cnt).toEqual(p.logcnt[l]);
        expect(cnt.every((c) => c >= 1)).toBe(true);
        const gpu = new Array(G).fill(0);
        row.forEach((e, s) => { gpu[Math.floor(s / (R / G))] += weight[l][e] / cnt[e]; });
        const bal = gpu.reduce((a, b) => a + b, 0) / G / Math.max(...gpu);
        expect(p.balancedness[l]).toBeCloseTo(bal, 6);
        expect(p.balancedness[l]).toBeGreaterThanOrEqual(eplb.p.balancedness[l] - 1e-9);
      });
    }
    kept.p.phy2log.forEach((row: number[], l: number) => {
      expect(groupNodes(row)).toEqual(groupNodes(eplb.p.phy2log[l])); // every group on the node EPLB chose
      expect(groupNodes(row).every((n) => n >= 0)).toBe(true);
    });
    cross.p.phy2log.forEach((row: number[]) => { spans += groupNodes(row).filter((n) => n < 0).length; });
    expect(spans).toBeGreaterThan(0); // --cross-node did move experts across nodes
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(cross.p.balancedness)).toBeGreaterThan(mean(kept.p.balancedness));
    // the printed summary is the file's
    for (const { r, p } of [kept, cross]) {
      const row = /^best \(ours\)\s+(\S+)\s+(\S+)$/m.exec(r.stdout);
      expect(row, r.stdout).not.toBeNull();
      expect(Number(row![1])).toBeCloseTo(mean(p.balancedness), 3);
      expect(Number(row![2])).toBeCloseTo(Math.min(...p.balancedness), 3);
    }
  });
});
