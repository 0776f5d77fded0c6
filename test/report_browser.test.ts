/**
 * Report pages in a real browser: headless Chromium (Debian's chromium package, driven by playwright-core) opens
 * the run, compare, plan, simulate and sweep pages offline; every chart must exist as an ECharts instance with a
 * non-empty canvas that has data drawn on it (coloured pixels, not just grey axes), with no console errors, page
 * errors or network requests; the layer selector must redraw the heatmap and its tooltip must show the cell.
 * Screenshots go to a temp dir. Chromium missing is a failure, not a skip (.ci/run installs it).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { planPlacement } from '../src/plan/planner.ts';
import { writeReport } from '../src/report/report.ts';
import { writeSyntheticRun } from './synthetic_run.ts';
import { readModelShape } from '../src/sim/model_shape.ts';
import { simulate } from '../src/sim/simulate.ts';
import { recommend, runSweep } from '../src/sim/sweep.ts';
import { readTopology } from '../src/sim/topology.ts';

const CHROMIUM = '/usr/bin/chromium';
const HOSTILE_METHODS = ['@fmt:heat', '@fmt:constructor', '{b}{c}<img src=x onerror="window.__pwned=1">'];
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-report-browser-'));
const shots = path.join(tmp, 'screenshots');
let browser: Browser;
const pages: Record<string, string> = {};

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: the browser test needs it. Install it with "apt-get update && apt-get install -y chromium" (.ci/run does this).`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });

  writeSyntheticRun(path.join(tmp, 'run'), { steps: 400, layers: 3, experts: 8, epRanks: 4 });
  pages.run = await writeReport(path.join(tmp, 'run'));

  const cmp = path.join(tmp, 'cmp');
  for (const [i, m] of ['none', 'switch', 'aux_free'].entries()) writeSyntheticRun(path.join(cmp, 'runs', `${m}-seed0`), { steps: 120, layers: 2, experts: 8, seed: i + 5 });
  fs.writeFileSync(path.join(cmp, 'compare.json'), JSON.stringify({ methods: ['none', 'switch', 'aux_free'].map((method, i) => ({
    method, final_loss: 2.3 - 0.02 * i, final_loss_std: 0.01, load_cv: 0.6 / (i + 1), max_load_share: 0.3 / (i + 1), maxvio: 1.5 / (i + 1), dropped_fraction: 0.05 / (i + 1), dead_experts: i === 0 ? 1 : 0, step_time_ratio: 1 + 0.03 * i,
  })) }));
  pages.compare = await writeReport(cmp);

  const weight = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86], [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]];
  fs.writeFileSync(path.join(tmp, 'load.json'), JSON.stringify(weight));
  const o = { numReplicas: 16, numGroups: 4, numNodes: 2, numGpus: 8, method: 'best' as const, topK: 2 };
  const r = planPlacement(weight, o);
  fs.writeFileSync(path.join(tmp, 'plan.json'), JSON.stringify({
    format: 'switchyard-plan', version: 1, ...r, source: { file: path.join(tmp, 'load.json'), format: 'matrix', notes: [] },
    numLogicalExperts: 12, numReplicas: 16, numGroups: 4, numNodes: 2, numGpus: 8, layers: [0, 1],
  }));
  pages.plan = await writeReport(path.join(tmp, 'plan.json'), { load: path.join(tmp, 'load.json') });

  // method names that look like the page's formatter references or ECharts templates are data, shown as text
  const hostile = path.join(tmp, 'cmp-hostile');
  fs.mkdirSync(hostile, { recursive: true });
  fs.writeFileSync(path.join(hostile, 'compare.json'), JSON.stringify({ methods: HOSTILE_METHODS.map((method, i) => ({
    method, final_loss: 2.3 - 0.02 * i, final_loss_std: null, load_cv: 0.6 / (i + 1), max_load_share: 0.3, maxvio: 1, dropped_fraction: 0, dead_experts: 0, step_time_ratio: 1,
  })) }));
  pages.hostile = await writeReport(hostile);

  const topo = await readTopology('configs/topology-tiny.yaml');
  const shape = await readModelShape('configs/sim-model-switch.yaml', { experts: 12, top_k: 2 });
  fs.writeFileSync(path.join(tmp, 'sim.json'), JSON.stringify({ topology: topo, model: shape, load: 'trace load.json', layers: simulate(topo, shape, { kind: 'trace', weight }) }));
  pages.simulate = await writeReport(path.join(tmp, 'sim.json'));
  const sweepShape = await readModelShape('configs/sim-model-switch.yaml', {});
  fs.writeFileSync(path.join(tmp, 'sweep.json'), JSON.stringify({
    topology: topo, model: sweepShape, load: 'uniform', sweep: runSweep(topo, sweepShape, [{ experts: 2, topK: 1 }, { experts: 4, topK: 2 }], { kind: 'uniform' }),
    recommendation: recommend(topo, sweepShape, { kind: 'uniform' }),
  }));
  pages.sweep = await writeReport(path.join(tmp, 'sweep.json'));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface ChartCheck { id: string; instance: boolean; canvases: number; width: number; height: number; colored: number }

/** Opens a page, collecting console errors, page errors and any non-file request; waits for the report script. */
async function open(file: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  // Errors only: the pixel checks' own getImageData readbacks draw a Canvas2D performance warning.
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console.error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => { if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) problems.push(`request: ${r.url()}`); });
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  await page.waitForFunction(() => (window as any).__switchyard?.ready === true, undefined, { timeout: 20_000 });
  return { page, problems };
}

/**
 * Per chart container: ECharts instance, its canvas size, and pixels in saturated colour (series, not grey axes or
 * text) inside the plot area — the legend (top 34 px) and the colour scale (right 110 px) are left out, so a chart
 * whose series drew nothing has none.
 */
function checkCharts(page: Page): Promise<ChartCheck[]> {
  return page.evaluate(() => Array.from(document.querySelectorAll<HTMLElement>('div.chart')).map((div) => {
    const canvas = div.querySelector('canvas');
    let colored = 0;
    if (canvas && canvas.width > 0 && canvas.height > 0) {
      const r = canvas.width / div.clientWidth; // device pixels per CSS pixel
      const x0 = Math.round(60 * r), x1 = canvas.width - Math.round(110 * r), y0 = Math.round(34 * r), y1 = canvas.height - Math.round(30 * r);
      const px = canvas.getContext('2d')!.getImageData(x0, y0, x1 - x0, y1 - y0).data;
      for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 200 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 40) colored++;
    }
    return {
      id: div.id, instance: (window as any).echarts.getInstanceByDom(div) !== undefined, canvases: div.querySelectorAll('canvas').length,
      width: canvas?.width ?? 0, height: canvas?.height ?? 0, colored,
    };
  }));
}

/** Hash of a chart's canvas pixels (to see a redraw). */
function canvasHash(page: Page, id: string): Promise<number> {
  return page.evaluate((id) => {
    const c = document.querySelector<HTMLCanvasElement>(`#${id} canvas`)!;
    const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < px.length; i += 1) h = (h * 31 + px[i]) | 0;
    return h;
  }, id);
}

const EXPECTED: Record<string, string[]> = {
  run: ['loss', 'aux', 'lr', 'grad', 'cv', 'maxvio', 'maxshare', 'dropped', 'entropy', 'capacity', 'dead', 'heatmap', 'finalshare', 'overview', 'ep'],
  compare: ['cmp-loss', 'cmp-cv', 'cmp-maxshare', 'cmp-maxvio', 'cmp-time', 'cmp-dropped', 'cmp-dead', 'cmp-tradeoff', 'cmp-runs-loss', 'cmp-runs-cv', 'cmp-runs-maxvio', 'cmp-runs-maxshare'],
  plan: ['plan-bal', 'plan-internode', 'plan-gpu', 'plan-replicas'],
  simulate: ['sim-breakdown', 'sim-layers', 'sim-bal', 'sim-bytes'],
  sweep: ['sweep-gain', 'sweep-overhead', 'sweep-rec'],
};

describe('report pages in headless Chromium', () => {
  for (const kind of Object.keys(EXPECTED)) {
    it(`${kind}: every chart rendered, no errors, no network; screenshot saved`, async () => {
      const { page, problems } = await open(pages[kind]);
      try {
        const state = await page.evaluate(() => ({ errors: (window as any).__switchyard.errors as string[] }));
        expect(state.errors).toEqual([]);
        const charts = await checkCharts(page);
        expect(charts.map((c) => c.id.replace(/^chart-/, ''))).toEqual(EXPECTED[kind]);
        for (const c of charts) {
          expect(c.instance, `${c.id} has an ECharts instance`).toBe(true);
          expect(c.canvases, `${c.id} has a canvas`).toBeGreaterThanOrEqual(1);
          expect(c.width * c.height, `${c.id} canvas size`).toBeGreaterThan(200 * 150);
          expect(c.colored, `${c.id} has data drawn`).toBeGreaterThan(/heatmap|overview/.test(c.id) ? 2000 : 100);
        }
        const png = path.join(shots, `${kind}.png`);
        fs.mkdirSync(shots, { recursive: true });
        await page.screenshot({ path: png, fullPage: true });
        const head = fs.readFileSync(png).subarray(0, 8);
        expect(head.equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
        expect(fs.statSync(png).size).toBeGreaterThan(30_000);
        expect(problems).toEqual([]);
      } finally {
        await page.close();
      }
    });
  }

  it('compare: method names that look like formatters or templates render as plain text', async () => {
    const { page, problems } = await open(pages.hostile);
    try {
      const state = await page.evaluate(() => ({ errors: (window as any).__switchyard.errors as string[], pwned: (window as any).__pwned }));
      expect(state.errors).toEqual([]);
      expect(state.pwned).toBeUndefined();
      const labels = await page.evaluate(() => {
        const chart = (window as any).echarts.getInstanceByDom(document.getElementById('chart-cmp-tradeoff'));
        return chart.getOption().series.map((s: { name: string; label: { formatter: (p: unknown) => string } }) => s.label.formatter({ seriesName: s.name }));
      });
      expect(labels).toEqual(HOSTILE_METHODS);
      expect(problems).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('run: the layer selector redraws the heatmap and final shares; the heatmap tooltip names the cell', async () => {
    const { page, problems } = await open(pages.run);
    try {
      const before = await Promise.all([canvasHash(page, 'chart-heatmap'), canvasHash(page, 'chart-finalshare')]);
      await page.selectOption('select[data-selector="layer"]', '2');
      const after = await Promise.all([canvasHash(page, 'chart-heatmap'), canvasHash(page, 'chart-finalshare')]);
      expect(after[0]).not.toBe(before[0]);
      expect(after[1]).not.toBe(before[1]);
      await page.selectOption('select[data-selector="layer"]', '0');
      expect(await canvasHash(page, 'chart-heatmap')).toBe(before[0]);

      const heat = page.locator('#chart-heatmap');
      await heat.scrollIntoViewIfNeeded();
      const box = (await heat.boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      const tip = page.locator('#tip-heatmap');
      await tip.waitFor({ state: 'visible', timeout: 5_000 });
      expect(await tip.innerText()).toMatch(/^expert e\d+\nsteps \d+(–\d+)?\n\d+\.\d{3} × mean load$/);
      expect(problems).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
