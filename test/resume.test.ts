/**
 * Resume through the real CLI: a run killed with SIGKILL mid-training and resumed logs the same losses
 * from its checkpoint on as an uninterrupted run; SIGINT saves a checkpoint and exits cleanly.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect } from 'vitest';
import { tinyLmYaml } from './helpers.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';

const CLI = path.resolve('bin/switchyard.js');
const CONFIG = tinyLmYaml({
  dim: 32, expert_hidden: 32, batch_size: 4, steps: 40, checkpoint_every: 8, eval_batches: undefined, lr: 3.0e-3,
  router: { type: 'noisy_topk' }, balance: { gate_adjust: { enabled: true, learned: true } }, data: { source: 'nlp-corpus', max_chars: 200000 },
});

function setup(): { dir: string; config: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-resume-'));
  const config = path.join(dir, 'cfg.yaml');
  fs.writeFileSync(config, CONFIG);
  return { dir, config };
}

/** Starts `switchyard train`, and once `ready(out)` holds sends `signal`; resolves with the exit code. */
function runUntil(args: string[], ready: () => boolean, signal: NodeJS.Signals): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const timer = setInterval(() => { if (ready()) { clearInterval(timer); child.kill(signal); } }, 20);
    const guard = setTimeout(() => { clearInterval(timer); child.kill('SIGKILL'); reject(new Error(`run did not reach its signal point: ${err}`)); }, 120_000);
    child.on('exit', (code) => { clearInterval(timer); clearTimeout(guard); resolve(code); });
  });
}

const losses = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl')).map((r) => [r.step, r.loss]);

describe('resume through the CLI', () => {
  it('a run killed with SIGKILL and resumed gives the same losses as an uninterrupted run', async () => {
    const { dir, config } = setup();
    const full = path.join(dir, 'full');
    const cut = path.join(dir, 'cut');
    const r = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--out', full], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // kill once the step-16 checkpoint exists: the run is then somewhere past step 16
    const ck = path.join(cut, 'checkpoints', 'step-00000016', 'state.json');
    const code = await runUntil(['train', '--config', config, '--out', cut], () => fs.existsSync(ck), 'SIGKILL');
    expect(code).toBe(null); // killed, not exited
    const killedAt = readMetrics(path.join(cut, 'metrics.jsonl')).length;
    expect(killedAt).toBeLessThan(40);
    const resumed = spawnSync(process.execPath, [CLI, 'train', '--resume', cut], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(losses(cut)).toEqual(losses(full)); // every step, bit for bit, no duplicates
  });

  it('SIGINT saves a checkpoint at the current step and exits cleanly', async () => {
    const { dir, config } = setup();
    const out = path.join(dir, 'run');
    const ck = path.join(out, 'checkpoints', 'step-00000008', 'state.json');
    const code = await runUntil(['train', '--config', config, '--out', out], () => fs.existsSync(ck), 'SIGINT');
    expect(code).toBe(0);
    const steps = readMetrics(path.join(out, 'metrics.jsonl')).length;
    expect(steps).toBeLessThan(40);
    const cks = fs.readdirSync(path.join(out, 'checkpoints'));
    expect(cks).toContain(`step-${String(steps).padStart(8, '0')}`);
  });
});
