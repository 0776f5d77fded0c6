/**
 * Report benchmark (target: a 10,000-step run with 64 experts and 12 layers opens in under 3 s): writes a
 * synthetic run of that size, times writeReport (generation) and textReport, measures the HTML size, and opens the
 * page in headless Chromium several times: time from navigation to every chart drawn (the page's own
 * performance.now() when its script sets ready, after a frame), chart-drawing time, and the slowest charts.
 * Needs /usr/bin/chromium. Run alone: `npm run bench -- --only report`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { textReport, writeReport } from '../src/report/report.ts';
import { launchChromium, openReport } from '../src/report/screenshot.ts';
import { writeSyntheticRun } from '../test/synthetic_run.ts';

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** Generation time, HTML size and page-open time of the report of a 10,000-step × 12-layer × 64-expert run. */
export async function benchReport(opts: { steps?: number; layers?: number; experts?: number; loads?: number } = {}): Promise<Record<string, unknown>> {
  const steps = opts.steps ?? 10_000, layers = opts.layers ?? 12, experts = opts.experts ?? 64, loads = opts.loads ?? 5;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-report-'));
  try {
    writeSyntheticRun(dir, { steps, layers, experts, epRanks: 8 });
    const metricsBytes = fs.statSync(path.join(dir, 'metrics.jsonl')).size;
    let t0 = performance.now();
    const html = await writeReport(dir);
    const generateMs = performance.now() - t0;
    t0 = performance.now();
    const text = textReport(dir);
    const textMs = performance.now() - t0;
    const htmlBytes = fs.statSync(html).size;

    const browser = await launchChromium();
    const ready: number[] = [], draw: number[] = [], wall: number[] = [];
    let slowest: Array<[string, number]> = [];
    try {
      for (let i = 0; i < loads; i++) {
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const w0 = performance.now();
        const state = await openReport(page, html);
        wall.push(performance.now() - w0);
        if (state.errors.length) throw new Error(`bench report: charts failed: ${state.errors.join('; ')}`);
        ready.push(state.readyAt!);
        draw.push(state.renderMs!);
        const timings = await page.evaluate(() => (window as unknown as { __switchyard: { timings: Record<string, number> } }).__switchyard.timings);
        if (i === loads - 1) slowest = Object.entries(timings).sort((a, b) => b[1] - a[1]).slice(0, 3);
        await page.close();
      }
    } finally {
      await browser.close();
    }
    const r = (x: number) => Math.round(x);
    return {
      run: { steps, layers, experts, metrics_jsonl_mb: +(metricsBytes / 1e6).toFixed(1) },
      generate_ms: r(generateMs), text_report_ms: r(textMs), text_report_lines: text.split('\n').length,
      html_mb: +(htmlBytes / 1e6).toFixed(2),
      open_ms: { note: `navigation start → every chart drawn, median of ${loads} loads in headless Chromium 1280x900`, median: r(median(ready)), min: r(Math.min(...ready)), max: r(Math.max(...ready)) },
      charts_draw_ms_median: r(median(draw)), goto_to_ready_wall_ms_median: r(median(wall)),
      slowest_charts_ms: Object.fromEntries(slowest),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
