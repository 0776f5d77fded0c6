/**
 * The playground's training step in Chromium (headless, wasm backend, in the page's Web Worker) against the
 * same step in Node (wasm), on the same config: the page's default LM (size M) exported as a CLI config.
 * Interleaved rounds: each round runs STEPS steps in the browser, then STEPS in Node (both runs continue
 * their own training), so machine load hits both arms alike. Per-step times are the Trainer.trainStep wall
 * time measured inside each arm (the browser's include nothing of the page's drawing, which runs on the main
 * thread while the worker trains). Target: browser / Node ≤ 1.5.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/config/load.ts';
import { buildPlayground } from '../src/playground/build.ts';
import { DEFAULT_SETTINGS, settingsToConfig } from '../src/playground/settings.ts';
import { openTrainer } from '../src/train/run.ts';
import { initBackend } from '../src/backend.ts';

const CHROMIUM = '/usr/bin/chromium';
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

export type PlaygroundBench = {
  config: string;
  rounds: number;
  steps_per_round: number;
  warmup_steps: number;
  browser_ms_per_step: number;
  node_ms_per_step: number;
  ratio: number;
  target: number;
  within_target: boolean;
  per_round: Array<{ browser_ms: number; node_ms: number; ratio: number }>;
  browser: string;
  /** the machine's 1-minute load average before and after (other work shares its cores). */
  load_average: [number, number];
};

export async function benchPlayground(opts: { rounds?: number; steps?: number; warmup?: number } = {}): Promise<PlaygroundBench> {
  const rounds = opts.rounds ?? 6, steps = opts.steps ?? 10, warmup = opts.warmup ?? 5;
  const loadBefore = os.loadavg()[0];
  const settings = { ...DEFAULT_SETTINGS };
  const total = warmup + rounds * steps;
  const cfg = parseConfig(settingsToConfig(settings, total));
  await initBackend('wasm');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-playground-'));
  const html = path.join(dir, 'playground.html');
  fs.writeFileSync(html, (await buildPlayground()).html);
  const { chromium } = await import('playwright-core'); // loaded when used: the GPU bundle of bench/run.ts has no browser
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'], headless: true });
  fs.mkdirSync(path.join(dir, 'node-run'));
  const trainer = openTrainer(cfg, path.join(dir, 'node-run'));
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await page.goto(`file://${html}?backend=wasm`); // the wasm step is what this compares with Node
    await page.waitForFunction(() => (window as any).__playground?.ready && (window as any).__playground.runs().A.ready, undefined, { timeout: 60_000 });
    const version = browser.version();
    /** n more browser steps; returns their step times (ms). */
    const browserSteps = async (n: number): Promise<number[]> => {
      const before = await page.evaluate(() => (window as any).__playground.runs().A.steps as number);
      await page.evaluate((n) => (window as any).__playground.step(n), n);
      await page.waitForFunction((k) => (window as any).__playground.runs().A.steps >= k && !(window as any).__playground.runs().A.running, before + n, { timeout: 300_000 });
      return page.evaluate((b) => ((window as any).__playground.stepMs() as number[]).slice(b), before);
    };
    const nodeSteps = async (n: number): Promise<number[]> => {
      const ms: number[] = [];
      for (let i = 0; i < n; i++) { const t0 = performance.now(); await trainer.trainStep(); ms.push(performance.now() - t0); }
      return ms;
    };
    await browserSteps(warmup);
    await nodeSteps(warmup);
    const per: PlaygroundBench['per_round'] = [];
    const allB: number[] = [], allN: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const b = await browserSteps(steps);
      const n = await nodeSteps(steps);
      allB.push(...b); allN.push(...n);
      per.push({ browser_ms: +median(b).toFixed(2), node_ms: +median(n).toFixed(2), ratio: +(median(b) / median(n)).toFixed(3) });
      process.stderr.write(`  round ${r + 1}: browser ${median(b).toFixed(1)} ms/step, node ${median(n).toFixed(1)} ms/step\n`);
    }
    const ratio = median(per.map((p) => p.ratio)); // median of per-round ratios: each round's arms saw the same load
    return {
      config: `playground default (LM size M: ${cfg.layers} blocks, D ${cfg.dim}, E ${cfg.expert_num}, k ${cfg.top_k}, H ${cfg.expert_hidden}, batch ${cfg.batch_size}×${cfg.seq_len} bytes), wasm both`,
      rounds, steps_per_round: steps, warmup_steps: warmup,
      browser_ms_per_step: +median(allB).toFixed(2), node_ms_per_step: +median(allN).toFixed(2), ratio: +ratio.toFixed(3),
      target: 1.5, within_target: ratio <= 1.5, per_round: per, browser: `Chromium ${version} headless, page's Web Worker`,
      load_average: [+loadBefore.toFixed(1), +os.loadavg()[0].toFixed(1)],
    };
  } finally {
    trainer.dispose();
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
