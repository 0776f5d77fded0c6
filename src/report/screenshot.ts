/**
 * Opens report pages in headless Chromium (Debian's chromium package, driven by playwright-core): screenshots
 * for the README and `--screenshot`, and the page-load measurement of bench/report.ts. Offline: the page needs
 * no network and Chromium is started with background networking off.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
// loaded on first use: a bundle of the benchmarks (bench/gpu/bundle.mjs) leaves it out and never needs it
import type { Browser, Page } from 'playwright-core';

/** Debian's chromium; SWITCHYARD_CHROMIUM overrides it. */
export function chromiumPath(): string {
  return process.env.SWITCHYARD_CHROMIUM ?? '/usr/bin/chromium';
}

/** Flags for a quiet, offline headless Chromium (no sandbox: CI containers run as root). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Launches headless Chromium; a missing binary is an error that says how to install it. */
export async function launchChromium(): Promise<Browser> {
  const exe = chromiumPath();
  if (!fs.existsSync(exe)) throw new Error(`chromium not found at ${exe}: install it (apt-get install -y chromium) or set SWITCHYARD_CHROMIUM to a Chromium binary`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: exe, args: CHROMIUM_ARGS, headless: true });
}

/** Page state the report script publishes (page.ts). */
export interface ReportPageState {
  ready: boolean;
  errors: string[];
  renderMs: number | null;
  readyAt: number | null;
}

/** Opens a report file in `page` and waits until every chart is drawn; returns the page's state. */
export async function openReport(page: Page, htmlPath: string, timeoutMs = 30_000): Promise<ReportPageState> {
  if (!fs.existsSync(htmlPath)) throw new Error(`report page ${htmlPath} does not exist`);
  await page.goto(pathToFileURL(path.resolve(htmlPath)).href, { waitUntil: 'load', timeout: timeoutMs });
  await page.waitForFunction(() => (window as unknown as { __switchyard?: ReportPageState }).__switchyard?.ready === true, undefined, { timeout: timeoutMs });
  return page.evaluate(() => {
    const s = (window as unknown as { __switchyard: ReportPageState }).__switchyard;
    return { ready: s.ready, errors: s.errors, renderMs: s.renderMs, readyAt: s.readyAt };
  });
}

/** Full-page PNG of a report at 1280 px wide; throws if a chart failed to render. Returns pngPath. */
export async function screenshotReport(htmlPath: string, pngPath: string, opts: { width?: number } = {}): Promise<string> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: opts.width ?? 1280, height: 900 }, deviceScaleFactor: 1 });
    const state = await openReport(page, htmlPath);
    if (state.errors.length) throw new Error(`report ${htmlPath}: charts failed: ${state.errors.join('; ')}`);
    fs.mkdirSync(path.dirname(path.resolve(pngPath)), { recursive: true });
    await page.screenshot({ path: pngPath, fullPage: true });
    return pngPath;
  } finally {
    await browser.close();
  }
}
