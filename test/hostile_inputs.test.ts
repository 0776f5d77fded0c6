/**
 * Hostile inputs through the real CLI: a FIFO given as any file is refused at once (the child is only
 * killed by a guard if it hangs, which fails the test); NaN weights in a checkpoint are refused naming the
 * tensor; a huge list of unknown config keys gives a capped error; generate reads a prompt file.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tinyLmYaml } from './helpers.ts';
import { readSafetensorsFile, writeSafetensorsAtomic } from '../src/io/safetensors.ts';
import { ConfigError, loadConfig } from '../src/config/load.ts';

const CLI = path.resolve('bin/switchyard.js');
const TINY = tinyLmYaml({ steps: 2 });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-hostile-'));
const run = path.join(tmp, 'run');

/** Runs the CLI; a guard kills it after 120 s (a hang), which the caller sees as a null status. */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (status) => { clearTimeout(guard); resolve({ status, stdout, stderr }); });
  });
}

beforeAll(() => {
  const cfg = path.join(tmp, 'tiny.yaml');
  fs.writeFileSync(cfg, TINY);
  const r = spawnSync(process.execPath, [CLI, 'train', '--config', cfg, '--out', run], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}, 120_000);

describe('a FIFO given as a file is refused, not waited on', () => {
  it('config, load trace (file and trace folder), placement, topology, report input, checkpoint, prompt file', async () => {
    const fifo = path.join(tmp, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const traceDir = path.join(tmp, 'trace');
    fs.mkdirSync(traceDir);
    execFileSync('mkfifo', [path.join(traceDir, 'router_trace_rank0.jsonl')]);
    const fifoJson = path.join(tmp, 'fifo.json');
    execFileSync('mkfifo', [fifoJson]);
    const ckRun = path.join(tmp, 'fifo-run');
    fs.cpSync(run, ckRun, { recursive: true });
    const ck = path.join(ckRun, 'checkpoints', fs.readdirSync(path.join(ckRun, 'checkpoints')).filter((n) => n.startsWith('step-')).sort().pop()!);
    fs.rmSync(path.join(ck, 'model.safetensors'));
    execFileSync('mkfifo', [path.join(ck, 'model.safetensors')]);
    const sim = ['simulate', '--topology', 'configs/topology-tiny.yaml', '--model', 'configs/sim-model-switch.yaml', '--load', 'uniform'];
    const cases: Array<[string[], RegExp]> = [
      [['train', '--config', fifo, '--out', path.join(tmp, 'never')], /not a regular file/],
      [['plan', '--load', fifo, '--replicas', '8', '--gpus', '8', '--out', path.join(tmp, 'p.json')], /load file .*fifo is a FIFO \(named pipe\)/],
      [['plan', '--load', traceDir, '--replicas', '8', '--gpus', '8', '--out', path.join(tmp, 'p.json')], /router trace .*router_trace_rank0\.jsonl is a FIFO/],
      [[...sim, '--placement', fifo], /placement file .*fifo is a FIFO/],
      [['simulate', '--topology', fifo, '--model', 'configs/sim-model-switch.yaml', '--load', 'uniform'], /topology file .*fifo is a FIFO/],
      [['report', fifoJson], /report input .*fifo\.json is a FIFO/],
      [['eval', ckRun], /model\.safetensors.*not a regular file/],
      [['generate', run, '--prompt-file', fifo, '--tokens', '2'], /prompt file .*fifo is a FIFO/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      expect(r.status, `${cases[i][0].join(' ')}: exits with an error (null = hung and killed)`).toBe(1);
      expect(r.stderr, cases[i][0].join(' ')).toMatch(cases[i][1]);
    });
  }, 240_000);
});

describe('checkpoint weights', () => {
  it('NaN or Inf in a checkpoint tensor is refused, naming the tensor (eval and resume)', async () => {
    const bad = path.join(tmp, 'nan-run');
    fs.cpSync(run, bad, { recursive: true });
    const ck = path.join(bad, 'checkpoints', fs.readdirSync(path.join(bad, 'checkpoints')).filter((n) => n.startsWith('step-')).sort().pop()!);
    const file = path.join(ck, 'model.safetensors');
    const { tensors, metadata } = readSafetensorsFile(file);
    const name = Object.keys(tensors).find((k) => k.includes('experts.w1'))!;
    (tensors[name].data as Float32Array)[3] = NaN;
    (tensors[name].data as Float32Array)[5] = Infinity;
    writeSafetensorsAtomic(file, tensors, metadata);
    const [ev, resume] = await Promise.all([cli(['eval', bad]), cli(['train', '--resume', bad, '--steps', '4'])]);
    for (const r of [ev, resume]) {
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`tensor "${name}" holds 2 non-finite values (first NaN at flat index 3)`);
    }
  }, 120_000);
});

describe('config error list', () => {
  it('thousands of unknown keys give a capped list, not one line each', () => {
    const file = path.join(tmp, 'keys.yaml');
    fs.writeFileSync(file, Array.from({ length: 3000 }, (_, i) => `unknown_key_${i}: 1\n`).join(''));
    let err: unknown;
    try { loadConfig(file); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg.split('\n').length).toBeLessThanOrEqual(22);
    expect(msg).toContain('and 2980 more problems not listed');
  });
});

describe('generate --prompt-file', () => {
  it('reads a prompt longer than the argument limit from a file; exactly one of --prompt / --prompt-file', async () => {
    const file = path.join(tmp, 'prompt.txt');
    const prompt = `${'The quick brown fox jumps over the lazy dog. '.repeat(4000)}The end`; // ≈180 kB
    fs.writeFileSync(file, prompt);
    const [ok, both, none] = await Promise.all([
      cli(['generate', run, '--prompt-file', file, '--tokens', '3', '--temperature', '0']),
      cli(['generate', run, '--prompt-file', file, '--prompt', 'x']),
      cli(['generate', run]),
    ]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout.startsWith(prompt)).toBe(true);
    expect(ok.stdout.length).toBeGreaterThan(prompt.length);
    for (const r of [both, none]) {
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('give exactly one of --prompt TEXT or --prompt-file FILE');
    }
  }, 120_000);
});
