/**
 * The playground in headless Chromium (Debian's chromium via playwright-core), driven through its own buttons
 * and selects: the page loads from file:// with no request beyond file:/data:/blob: and no console error; the
 * LM trains and its loss falls; switching balancing from none to the aux-loss-free bias on a config that skews
 * lowers the load CV; the A/B view trains two runs; "Export run" gives config.yaml + metrics.jsonl that
 * `switchyard report` renders and that `switchyard train --config` reproduces (same first losses in Node).
 * That browser has no WebGPU adapter (the page falls back to wasm and says why). A second Chromium gets one from
 * its SwiftShader (WebGPU on the CPU): there the page trains on webgpu, A/B and Export included, and its
 * losses match the forced-wasm run of the same settings. Chromium missing is a failure, not a skip (.ci/run installs it).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConfig } from '../src/config/load.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';
import { buildPlayground } from '../src/playground/build.ts';
import { writeReport } from '../src/report/report.ts';
import { train } from '../src/train/run.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** WebGPU without a GPU: Chromium's own SwiftShader Vulkan as the adapter (checked with navigator.gpu.requestAdapter()). */
const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-playground-'));
const html = path.join(tmp, 'playground.html');
let browser: Browser;
let gpuBrowser: Browser;
let inputs: string[] = [];

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: the browser test needs it. Install it with "apt-get update && apt-get install -y chromium" (.ci/run does this).`);
  }
  const built = await buildPlayground();
  fs.writeFileSync(html, built.html);
  inputs = built.inputs;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  gpuBrowser = await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...WEBGPU_ARGS], headless: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gpuBrowser?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface RunState { settings: Record<string, unknown>; steps: number; running: boolean; ready: boolean; backend: string; error: string | null; losses: (number | null)[]; cv: number[]; probe: boolean }
type Runs = Record<string, RunState>;

/** Opens the page (URL parameters `query`), collecting console errors, page errors and any request that is not file:, data: or blob:. */
async function open(query = '', on: Browser = browser): Promise<{ page: Page; problems: string[] }> {
  const page = await on.newPage({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console.error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => { if (!/^(file|data|blob):/.test(r.url())) problems.push(`request: ${r.url()}`); });
  await page.goto(`file://${html}${query}`, { waitUntil: 'load' });
  await page.waitForFunction(() => (window as any).__playground?.ready === true, undefined, { timeout: 20_000 });
  await waitReady(page);
  return { page, problems };
}

const runs = (page: Page): Promise<Runs> => page.evaluate(() => (window as any).__playground.runs());

/** Waits until every run has a model (after a load or a settings change). */
async function waitReady(page: Page): Promise<void> {
  await page.waitForFunction(() => Object.values((window as any).__playground.runs()).every((r: any) => r.ready || r.error), undefined, { timeout: 30_000 });
}

/** Sets a control as a user does (select, or type + Tab) and waits for the run to restart. */
async function setControl(page: Page, name: string, value: string): Promise<void> {
  const el = page.locator(`#settings [name="${name}"]`);
  if ((await el.evaluate((e) => e.tagName)) === 'SELECT') await el.selectOption(value);
  else { await el.fill(value); await el.press('Tab'); }
  await waitReady(page);
}

/** Presses ▶, waits for n steps in every run, presses pause; returns the runs. */
async function trainSteps(page: Page, n: number, timeout = 90_000): Promise<Runs> {
  await page.click('#run');
  await page.waitForFunction((n) => Object.values((window as any).__playground.runs()).every((r: any) => r.steps >= n || r.error), n, { timeout });
  await page.click('#run');
  // the step in flight finishes first (on SwiftShader's WebGPU a step takes seconds)
  await page.waitForFunction(() => Object.values((window as any).__playground.runs()).every((r: any) => !r.running), undefined, { timeout: Math.min(timeout, 60_000) });
  return runs(page);
}

/** Asks every run for exactly n more steps (the page's step hook) and waits until they are done and paused. */
async function stepExactly(page: Page, n: number, timeout: number): Promise<Runs> {
  await page.evaluate((n) => (window as any).__playground.step(n), n);
  await page.waitForFunction((n) => Object.values((window as any).__playground.runs()).every((r: any) => (r.steps >= n && !r.running) || r.error), n, { timeout });
  return runs(page);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('playground in headless Chromium', () => {
  it('the page bundles the CLI\'s own step, layer, routers, losses and controllers, and no Node module', () => {
    for (const f of ['src/train/step.ts', 'src/moe/layer.ts', 'src/moe/capacity.ts', 'src/router/topk.ts', 'src/losses/switch.ts', 'src/train/controllers/aux_free.ts', 'src/metrics/balance.ts', 'src/report/charts.ts']) {
      expect(inputs, f).toContain(f);
    }
    expect(inputs.filter((i) => /^node:|^(fs|path|os|worker_threads|child_process)$/.test(i))).toEqual([]);
  });

  it('loads from file:// with no network and no console error; says which backend trains, and why not WebGPU', async () => {
    const { page, problems } = await open();
    try {
      const r = await runs(page);
      expect(Object.keys(r)).toEqual(['A']);
      expect(r.A.backend).toMatch(/^wasm/);
      expect(await page.locator('#backend-choice').inputValue()).toBe('auto');
      // this Chromium has navigator.gpu but no adapter (no GPU, SwiftShader not enabled)
      expect(await page.locator('#backend').innerText()).toMatch(/^trains on wasm \(SIMD\)\s+no WebGPU: navigator\.gpu gave no adapter$/);
      expect(problems).toEqual([]);
    } finally { await page.close(); }
  });

  it('backend=webgpu without an adapter is a clear error in the page, not a crash; wasm still trains after switching', async () => {
    const { page, problems } = await open('?backend=webgpu');
    try {
      expect((await runs(page)).A.error).toBe('backend webgpu was asked for, but WebGPU is not available: navigator.gpu gave no adapter; choose auto or wasm');
      expect(await page.locator('#problems').innerText()).toContain('WebGPU is not available');
      await page.click('#run'); // nothing to train: the button does not crash the page
      await page.selectOption('#backend-choice', 'wasm');
      await waitReady(page);
      await setControl(page, 'size', 'S');
      const r = (await trainSteps(page, 2)).A;
      expect(r.error).toBeNull();
      expect(r.backend).toMatch(/^wasm/);
      expect(await page.locator('#backend').innerText()).toContain('forced (backend=wasm)');
      expect(problems).toEqual([]);
    } finally { await page.close(); }
  });

  it('30 steps of the byte LM: the loss falls, the sample sentence is routed', async () => {
    const { page, problems } = await open();
    try {
      await setControl(page, 'size', 'S');
      const r = (await trainSteps(page, 30)).A;
      expect(r.error).toBeNull();
      const loss = r.losses.slice(0, 30) as number[];
      expect(loss.every(Number.isFinite)).toBe(true);
      expect(loss[0]).toBeGreaterThan(5); // ≈ ln 256 = 5.55 at init
      expect(mean(loss.slice(-5))).toBeLessThan(mean(loss.slice(0, 5)) - 1);
      expect(r.probe).toBe(true);
      expect(await page.locator('#sample-A .bytes span.b').count()).toBe(32); // seq_len of size S
      // hovering a byte shows its router probabilities
      await page.locator('#sample-A .bytes span.b').nth(3).hover();
      expect(await page.locator('#probe-text').innerText()).toMatch(/token 3 .*layer 0, step \d+\n→ e\d+ [\d.]+/);
      expect(problems).toEqual([]);
    } finally { await page.close(); }
  });

  it('on a config that skews, switching balancing from none to aux-free lowers the load CV over 100 steps', async () => {
    const { page, problems } = await open();
    try {
      // sigmoid scores, lr 1e-2: with no balancing one or two experts take most bytes within 100 steps
      await setControl(page, 'size', 'S');
      await setControl(page, 'router', 'sigmoid');
      await setControl(page, 'lr', '0.01');
      const none = (await trainSteps(page, 100)).A;
      await setControl(page, 'balancing', 'aux_free');
      await setControl(page, 'biasRate', '0.01');
      expect((await runs(page)).A.steps).toBe(0); // a settings change restarts the run
      const free = (await trainSteps(page, 100)).A;
      const cvNone = mean(none.cv.slice(50, 100));
      const cvFree = mean(free.cv.slice(50, 100));
      expect(cvNone).toBeGreaterThan(0.6);
      expect(cvFree).toBeLessThan(0.75 * cvNone);
      expect(problems).toEqual([]);
    } finally { await page.close(); }
  });

  it('A/B: two runs side by side on the same data and seed; Export gives files that report renders and train --config reproduces', async () => {
    const { page, problems } = await open();
    try {
      await setControl(page, 'size', 'S');
      await page.check('#ab');
      await waitReady(page);
      const r = await trainSteps(page, 12);
      expect(Object.keys(r).sort()).toEqual(['A', 'B']);
      expect(r.A.settings.balancing).toBe('none');
      expect(r.B.settings.balancing).toBe('aux_free');
      // same seed and data: the first step's loss is the same (the bias only acts after the first update)
      expect(r.B.losses[0]).toBeCloseTo(r.A.losses[0]!, 5);
      expect(await page.locator('#heatrow .heat canvas').count()).toBeGreaterThanOrEqual(2);
      expect(await page.locator('#samples .sample').count()).toBe(2);
      expect(await page.locator('#stats thead th').allInnerTexts()).toEqual(['', 'run A', 'run B']);

      const dir = path.join(tmp, 'exported-b');
      fs.mkdirSync(dir);
      const downloads: Promise<void>[] = [];
      page.on('download', (d) => downloads.push(d.saveAs(path.join(dir, d.suggestedFilename()))));
      await page.click('#exports button[data-run="B"]');
      await expect.poll(() => downloads.length, { timeout: 10_000 }).toBe(2);
      await Promise.all(downloads);
      expect(fs.readdirSync(dir).sort()).toEqual(['config.yaml', 'metrics.jsonl']);

      const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
      expect(recs.map((x) => x.step)).toEqual(Array.from({ length: recs.length }, (_, i) => i + 1));
      expect(recs.length).toBeGreaterThanOrEqual(12);
      const report = await writeReport(dir);
      expect(fs.readFileSync(report, 'utf8')).toContain('Training run: exported-b');

      // the exported config is a CLI config (switchyard train --config): in Node it gives the browser's losses
      const cfg = loadConfig(path.join(dir, 'config.yaml'));
      expect(cfg.balance.aux_free.enabled).toBe(true);
      expect(cfg.data.max_chars).toBe(300_000);
      expect(cfg.steps).toBe(recs.length);
      const out = path.join(tmp, 'cli-run');
      await train(cfg, { outDir: out });
      const cli = readMetrics(path.join(out, 'metrics.jsonl'));
      expect(cli.length).toBe(recs.length);
      cli.forEach((c, i) => expect(c.loss, `step ${c.step}`).toBeCloseTo(recs[i].loss!, 4));
      expect(cli[cli.length - 1].expert_load).toEqual(recs[recs.length - 1].expert_load);
      expect(problems).toEqual([]);
    } finally { await page.close(); }
  });

  it('with a WebGPU adapter: A/B trains on webgpu, Export says so, and the forced-wasm runs give the same losses', async () => {
    const { page, problems } = await open('', gpuBrowser);
    try {
      expect((await runs(page)).A.backend).toBe('webgpu');
      expect(await page.locator('#backend').innerText()).toMatch(/^trains on webgpu\s+the browser gave a GPU adapter$/);
      await setControl(page, 'size', 'S');
      await page.check('#ab');
      await waitReady(page);
      const n = 2; // SwiftShader runs WebGPU on the CPU: the first step compiles every shader (≈20 s per worker on 2 busy cores). Step 1 checks the forward pass, step 2 the backward pass and AdamW
      const gpu = await stepExactly(page, n, 240_000); // no step beyond n: each costs seconds here
      for (const id of ['A', 'B']) {
        expect(gpu[id].error, id).toBeNull();
        expect(gpu[id].backend, id).toBe('webgpu');
        expect(gpu[id].losses.slice(0, n).every(Number.isFinite), id).toBe(true);
      }
      expect(gpu.B.losses[0]).toBeCloseTo(gpu.A.losses[0]!, 5);
      expect(gpu.B.probe).toBe(true); // the sample sentence is routed with async reads on webgpu

      const dir = path.join(tmp, 'exported-gpu');
      fs.mkdirSync(dir);
      const downloads: Promise<void>[] = [];
      page.on('download', (d) => downloads.push(d.saveAs(path.join(dir, d.suggestedFilename()))));
      await page.click('#exports button[data-run="A"]');
      await expect.poll(() => downloads.length, { timeout: 10_000 }).toBe(2);
      await Promise.all(downloads);
      const cfg = loadConfig(path.join(dir, 'config.yaml'));
      expect(cfg.backend).toBe('webgpu');
      expect(readMetrics(path.join(dir, 'metrics.jsonl')).map((x) => x.loss)).toEqual(gpu.A.losses);

      // a setting changed while a webgpu step is in flight (its reads yield to messages): that step ends on the
      // old model, then A restarts; a new lr leaves step 1 as it was (same weights and batch)
      await page.click('#run');
      await page.waitForFunction(() => (window as any).__playground.runs().A.running, undefined, { timeout: 10_000 });
      await setControl(page, 'lr', '0.002');
      await page.waitForFunction(() => (window as any).__playground.runs().A.steps >= 1, undefined, { timeout: 120_000 });
      await page.click('#run');
      await page.waitForFunction(() => Object.values((window as any).__playground.runs()).every((r: any) => !r.running), undefined, { timeout: 60_000 });
      const again = (await runs(page)).A;
      expect(again.error).toBeNull();
      expect(again.losses[0]).toBeCloseTo(gpu.A.losses[0]!, 5);
      await setControl(page, 'lr', '0.003');

      // the control restarts both runs on wasm: same settings, seed and data
      await page.selectOption('#backend-choice', 'wasm');
      await waitReady(page);
      const wasm = await stepExactly(page, n, 60_000);
      // Same float32 model, kernels summing in another order (and tfjs-webgpu's scatter adds with atomics):
      // the losses agree to ≈1e-7 relative here (measured: ≤ 4e-7 over 10 steps); 1e-4 leaves room for
      // other adapters and is far below a step's loss change (≥ 5e-3 relative from step 2 on).
      for (const id of ['A', 'B']) {
        expect(wasm[id].backend, id).toMatch(/^wasm/);
        for (let i = 0; i < n; i++) expect(Math.abs(gpu[id].losses[i]! - wasm[id].losses[i]!) / wasm[id].losses[i]!, `${id} step ${i + 1}`).toBeLessThan(1e-4);
      }
      expect(problems).toEqual([]);
    } finally { await page.close(); }
  }, 360_000);

  it('what backend webgpu refuses in the config is the CLI\'s message in the page; wasm accepts the same config', async () => {
    const set = '&set=balance.grad_reweight.enabled=true&set=balance.grad_reweight.mode=importance';
    const { page, problems } = await open(`?backend=webgpu${set}`, gpuBrowser);
    try {
      const r = (await runs(page)).A;
      expect(r.ready).toBe(false);
      expect(r.error).toBe('balance.grad_reweight.mode: balance.grad_reweight.mode "importance" reads per-expert gradient norms back to the host between backward and update, which backend webgpu does not allow synchronously; allowed with webgpu: utilization (from the step\'s loads), or backend wasm | cpu');
      expect(await page.locator('#problems').innerText()).toBe(r.error);
      await page.selectOption('#backend-choice', 'wasm');
      await waitReady(page);
      expect((await runs(page)).A.error).toBeNull();
      expect(problems).toEqual([]);
    } finally { await page.close(); }
  });
});
