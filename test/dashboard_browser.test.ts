/**
 * The live dashboard in a real browser during a real training run: `switchyard train --dashboard --port 0` on the
 * tiny config, headless Chromium (Debian's chromium via playwright-core) opens the page while it trains. The page
 * must receive at least 3 updates with growing chart point counts, log no console error, and request nothing but
 * the dashboard's own 127.0.0.1 address. Chromium missing is a failure (.ci/run installs it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../src/report/screenshot.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-dash-browser-'));
let child: ChildProcess | null = null;
let browser: Browser | null = null;

afterAll(async () => {
  await browser?.close();
  if (child && child.exitCode === null) child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface PageState { updates: number; errors: string[]; points: number; status: string | null }

describe('dashboard in Chromium during training', () => {
  it('updates at least 3 times with growing charts, no console errors, only 127.0.0.1 requests', async () => {
    const out = path.join(tmp, 'run');
    child = spawn(process.execPath, ['bin/switchyard.js', 'train', '--config', 'configs/tiny.yaml', '--steps', '30', '--set', 'log_every=2', '--set', 'eval_every=10',
      '--set', 'checkpoint_every=0', '--out', out, '--dashboard', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const url = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
        if (m) { clearInterval(t); resolve(m[1]); }
        if (child!.exitCode !== null) { clearInterval(t); reject(new Error(`train exited early: ${stderr}`)); }
      }, 50);
    });
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console.error: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(url, { waitUntil: 'load' });
    const read = () => page.evaluate((): PageState => {
      const s = (window as unknown as { __switchyard: { updates: number; errors: string[]; charts: Record<string, { getOption(): { series: Array<{ data: unknown[] }> } }>; runs: Record<number, { status: string }> } }).__switchyard;
      const loss = s.charts['r0-loss'];
      return { updates: s.updates, errors: s.errors, points: loss ? loss.getOption().series[0].data.length : 0, status: s.runs[0]?.status ?? null };
    });
    // Sample the page until the run is finished (bounded: the tiny run takes seconds).
    const seen: PageState[] = [];
    for (let i = 0; i < 600; i++) {
      const s = await read();
      if (!seen.length || s.updates !== seen[seen.length - 1].updates) seen.push(s);
      if (s.status === 'finished') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const last = seen[seen.length - 1];
    expect(last.status).toBe('finished');
    expect(last.updates).toBeGreaterThanOrEqual(3);
    const counts = seen.map((s) => s.points).filter((n) => n > 0);
    expect(new Set(counts).size).toBeGreaterThanOrEqual(3); // at least 3 different sizes of the loss line
    for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1]);
    expect(last.points).toBe(15); // 30 steps logged every 2
    expect(last.errors).toEqual([]);
    expect(problems).toEqual([]);
    const origin = new URL(url).origin;
    expect(requests.filter((r) => !r.startsWith(`${origin}/`))).toEqual([]);
    await page.close();
    // After training the server stays up until Ctrl-C; SIGINT closes it and the process exits.
    await new Promise<void>((resolve) => { const t = setInterval(() => { if (/dashboard stays up/.test(stdout)) { clearInterval(t); resolve(); } }, 50); });
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
