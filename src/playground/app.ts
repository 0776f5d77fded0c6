/**
 * The playground page: controls, one training worker per run (A, and B in A/B mode), and live views drawn with
 * the report's chart builders (src/report/charts.ts): loss, load CV / max share / MaxVio, the per-layer expert
 * load heatmap over steps, and a sample sentence coloured by expert with the router's probabilities on hover.
 * Nothing here trains: the worker does, so the page stays responsive.
 */
import { init as initChart, use, type EChartsType as ECharts } from 'echarts/core';
import { BarChart, CustomChart, LineChart, ScatterChart } from 'echarts/charts';
import { DataZoomComponent, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent, VisualMapComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import { barOption, HEAT_MAX, heatmapOption, lineOption, LOAD_RATIO_COLORS, PALETTE, type LineSeries } from '../report/charts.ts';
import { loadRatioCells, minMaxDownsample, stepBuckets, type Point } from '../report/downsample.ts';
import { toJsonLine, type MetricRecord } from '../metrics/record.ts';
import { BACKEND_CHOICES, type BackendChoice } from './backend_choice.ts';
import type { FromWorker, Probe, ToWorker } from './protocol.ts';
import { BALANCING, DEFAULT_SETTINGS, DROP_POLICIES, ROUTERS, SIZES, TASKS, settingsProblems, type Settings } from './settings.ts';

type RunId = 'A' | 'B';

interface Run {
  id: RunId;
  settings: Settings;
  worker: Worker;
  records: MetricRecord[];
  stepMs: number[];
  probe: Probe | null;
  /** as the worker last reported it. */
  running: boolean;
  /** the reset this run is at; the worker's messages of earlier resets are dropped. */
  gen: number;
  ready: boolean;
  backend: string;
  backendNote: string;
  layers: number;
  experts: number;
  params: number;
  error: string | null;
  /** resolves the pending export request. */
  exportWaiter: ((r: { configYaml: string; steps: number }) => void) | null;
}

const RUN_STYLE: Record<RunId, { color: string; dashed: boolean }> = { A: { color: '#4e79a7', dashed: false }, B: { color: '#e15759', dashed: true } };
const MAX_POINTS = 1500;
const MAX_BUCKETS = 300;

/** Expert colour: the report's palette for the first ten, evenly spaced hues beyond. */
export function expertColor(i: number, E: number): string {
  if (E <= PALETTE.length) return PALETTE[i];
  return `hsl(${Math.round((360 * i) / E)}, 62%, 52%)`;
}

const $ = <T extends HTMLElement = HTMLElement>(sel: string, root: ParentNode = document): T => {
  const el = root.querySelector<T>(sel);
  if (!el) throw new Error(`playground: no element ${sel}`);
  return el;
};
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const sig = (v: number | null | undefined, d = 4): string => (typeof v !== 'number' || !Number.isFinite(v) ? '–' : v === 0 ? '0' : Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3 ? v.toExponential(d - 1) : String(Number(v.toPrecision(d))));

// ---- chart plumbing: the report's options are plain JSON with {"@fmt": NAME} formatter references ---------------------

const FORMATTERS: Record<string, unknown> = {
  sig4: (v: unknown) => (Array.isArray(v) ? sig(v[1] as number) : sig(v as number)),
  axis: (v: number) => sig(v, 3),
};
function revive(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === 'object') {
    const name = (v as { '@fmt'?: unknown })['@fmt'];
    if (typeof name === 'string') return FORMATTERS[name];
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
}

/** Heatmap cells drawn as one nearest-neighbour bitmap (as the report page does): no per-cell elements. */
function heatBitmapSeries(cells: ArrayLike<number>[]): Record<string, unknown> {
  const rows = cells.length, cols = rows ? cells[0].length : 0;
  const stops = LOAD_RATIO_COLORS.map((h) => [1, 3, 5].map((o) => parseInt(h.slice(o, o + 2), 16)));
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), k = Math.min(stops.length - 2, Math.floor(t)), f = t - k;
    for (let c = 0; c < 3; c++) table[3 * i + c] = Math.round(stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f);
  }
  let cache: HTMLCanvasElement | null = null;
  return {
    type: 'custom', name: 'load', silent: true, data: [[0]],
    renderItem: (params: { coordSys: { x: number; y: number; width: number; height: number } }) => {
      const r = params.coordSys, dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
      if (rows && cols && (!cache || cache.width !== w || cache.height !== h)) {
        cache = document.createElement('canvas');
        cache.width = w; cache.height = h;
        const ctx = cache.getContext('2d')!, img = ctx.createImageData(w, h), px = img.data;
        for (let y = 0, o = 0; y < h; y++) {
          const row = cells[Math.min(rows - 1, Math.floor((y * rows) / h))];
          for (let x = 0; x < w; x++, o += 4) {
            const i = 3 * Math.min(255, Math.max(0, Math.round((row[Math.min(cols - 1, Math.floor((x * cols) / w))] / HEAT_MAX) * 255)));
            px[o] = table[i]; px[o + 1] = table[i + 1]; px[o + 2] = table[i + 2]; px[o + 3] = 255;
          }
        }
        ctx.putImageData(img, 0, 0);
      }
      return cache ? { type: 'image', style: { image: cache, x: r.x, y: r.y, width: r.width, height: r.height } } : null;
    },
  };
}

use([BarChart, CustomChart, LineChart, ScatterChart, DataZoomComponent, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent, VisualMapComponent, CanvasRenderer]);

// ---- state ----------------------------------------------------------------------------------------------------

const workerUrl = URL.createObjectURL(new Blob([$('#worker-src').textContent ?? ''], { type: 'text/javascript' }));
const runs: Partial<Record<RunId, Run>> = {};
let abMode = false;
let tab: RunId = 'A';
let layer = 0;
let hover: { run: RunId; token: number } | null = null;
const charts: Record<string, ECharts> = {};
/** URL parameters: backend=auto|webgpu|wasm (the header's control), set=key=value (config overrides, as the CLI's --set; repeatable). */
const params = new URLSearchParams(location.search);
let backendChoice: BackendChoice = (BACKEND_CHOICES as readonly string[]).includes(params.get('backend') ?? '') ? (params.get('backend') as BackendChoice) : 'auto';
const overrides = params.getAll('set');

/** Test and automation hooks (the browser tests drive the page through the same buttons a user clicks). */
const api = {
  ready: false,
  runs: () => Object.fromEntries(Object.values(runs).map((r) => [r!.id, { steps: r!.records.length, running: r!.running, ready: r!.ready, backend: r!.backend, error: r!.error, settings: r!.settings, losses: r!.records.map((x) => x.loss), cv: r!.records.map((x) => x.load_cv), probe: r!.probe !== null }])),
  errors: [] as string[],
  /** n more steps in every run (the step button sends 1). */
  step: (n: number) => activeRuns().forEach((r) => { if (!r.error) post(r, { type: 'step', n }); }),
  /** run A's per-step times (ms), measured around Trainer.trainStep in the worker. */
  stepMs: () => runs.A?.stepMs.slice() ?? [],
};
(window as unknown as { __playground: typeof api }).__playground = api;

function post(run: Run, msg: ToWorker): void { run.worker.postMessage(msg); }

function makeRun(id: RunId, settings: Settings): Run {
  const worker = new Worker(workerUrl, { name: `switchyard-${id}` });
  const run: Run = {
    id, settings: { ...settings }, worker, records: [], stepMs: [], probe: null, running: false, ready: false, gen: 1,
    backend: '…', backendNote: '', layers: 0, experts: settings.experts, params: 0, error: null, exportWaiter: null,
  };
  worker.onmessage = (ev: MessageEvent<FromWorker>) => onWorker(run, ev.data);
  worker.onerror = (ev) => { run.error = ev.message; api.errors.push(`${id}: ${ev.message}`); console.error(`worker ${id}: ${ev.message}`); scheduleRender(); };
  post(run, { type: 'reset', settings: run.settings, gen: run.gen, backend: backendChoice, overrides });
  return run;
}

function onWorker(run: Run, m: FromWorker): void {
  if (m.gen !== run.gen) return; // a step that finished after a reset was asked for
  switch (m.type) {
    case 'ready':
      Object.assign(run, { ready: true, backend: m.backend, backendNote: m.backendNote, params: m.params, layers: m.layers, experts: m.experts, error: null });
      break;
    case 'record': run.records.push(m.record); run.stepMs.push(m.stepMs); break;
    case 'probe': run.probe = m.probe; break;
    case 'state': run.running = m.running; break;
    case 'export': run.exportWaiter?.(m); run.exportWaiter = null; break;
    case 'error': run.error = m.message; run.running = false; api.errors.push(`${run.id}: ${m.message}`); break;
  }
  scheduleRender();
}

function resetRun(run: Run): void {
  Object.assign(run, { records: [], stepMs: [], probe: null, ready: false, error: null });
  run.gen++; // whatever the worker sends for the old run from now on is dropped
  const wasRunning = run.running;
  const problems = settingsProblems(run.settings);
  if (problems.length) {
    post(run, { type: 'pause' });
    Object.assign(run, { error: problems.join('; '), running: false });
    scheduleRender();
    return;
  }
  post(run, { type: 'reset', settings: run.settings, gen: run.gen, backend: backendChoice, overrides });
  if (wasRunning) post(run, { type: 'run' });
  scheduleRender();
}

const activeRuns = (): Run[] => (abMode ? [runs.A!, runs.B!] : [runs.A!]);

// ---- layout ---------------------------------------------------------------------------------------------------

function select(name: keyof Settings, label: string, options: Record<string, string> | readonly string[], hint = ''): string {
  const entries = Array.isArray(options) ? options.map((o) => [o, o]) : Object.entries(options);
  return `<label class="field" data-field="${name}"><span>${label}${hint ? ` <i title="${esc(hint)}">?</i>` : ''}</span><select name="${name}">${entries.map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join('')}</select></label>`;
}
function number(name: keyof Settings, label: string, attrs: string, hint = ''): string {
  return `<label class="field" data-field="${name}"><span>${label}${hint ? ` <i title="${esc(hint)}">?</i>` : ''}</span><input name="${name}" type="number" ${attrs}></label>`;
}

function layout(): void {
  $('#app').innerHTML = `
<header class="bar">
  <div class="brand"><b>Switchyard</b> MoE playground</div>
  <div class="transport">
    <button id="reset" title="new weights, step 0">↺</button>
    <button id="run" class="primary" title="train / pause">▶</button>
    <button id="step" title="one step">step</button>
  </div>
  <div class="counter"><div><span id="stepno">0</span><small>steps</small></div><div><span id="speed">–</span><small>ms / step</small></div></div>
  <label class="ab"><input type="checkbox" id="ab"> A/B compare</label>
  <div class="spacer"></div>
  <div id="exports"></div>
  <label class="backend-choice" title="auto: WebGPU where the browser gives an adapter, else wasm">backend <select id="backend-choice">${BACKEND_CHOICES.map((c) => `<option value="${c}">${c}</option>`).join('')}</select></label>
  <div id="backend" class="backend">…</div>
</header>
<main class="layout">
  <aside class="panel">
    <div class="tabs" id="tabs"></div>
    <form id="settings" autocomplete="off">
      <h3>Data</h3>
      ${select('task', 'task', TASKS)}
      ${select('size', 'model size', SIZES)}
      <h3>Routing</h3>
      ${select('router', 'router', ROUTERS)}
      ${number('tau', 'Gumbel τ', 'min="0.05" max="10" step="0.05"', 'temperature of the Gumbel-softmax (constant)')}
      ${number('experts', 'experts E', 'min="2" max="64" step="1"')}
      ${number('topK', 'top-k', 'min="1" max="64" step="1"', 'experts per token (expert choice: average per token)')}
      <h3>Balancing</h3>
      ${select('balancing', 'method', BALANCING)}
      ${number('auxWeight', 'weight α', 'min="0" max="10" step="0.001"', 'total loss = task + α · aux (or z-loss weight)')}
      ${number('biasRate', 'bias rate u', 'min="0.0001" max="1" step="0.001"', 'b_i ← b_i + u · sign(mean load − load_i) after every step')}
      <h3>Capacity</h3>
      ${select('drop', 'drop policy', DROP_POLICIES, 'what happens to assignments beyond an expert\'s capacity')}
      ${number('capacity', 'capacity factor', 'min="0.1" max="8" step="0.05"', 'C = ⌈factor · T · k / E⌉ slots per expert')}
      <h3>Optimiser</h3>
      ${number('lr', 'learning rate', 'min="0.00001" max="1" step="0.0005"', 'AdamW, 10 warmup steps, then constant')}
      ${number('seed', 'seed', 'min="0" max="99999" step="1"', 'init, data order and router noise')}
    </form>
    <p class="problems" id="problems"></p>
    <p class="note">Changing a setting restarts that run from step 0. Same seed ⇒ same data and initial weights.</p>
  </aside>
  <section class="views">
    <div class="grid4">
      <figure class="card"><figcaption><h3>Task loss</h3><p id="loss-cap">cross-entropy of the next byte (nats/byte)</p></figcaption><div class="chart" id="c-loss"></div></figure>
      <figure class="card"><figcaption><h3>Load CV</h3><p>σ(load) / μ(load) over experts; 0 = even</p></figcaption><div class="chart" id="c-cv"></div></figure>
      <figure class="card"><figcaption><h3>Max-load share</h3><p>the busiest expert's share of assignments</p></figcaption><div class="chart" id="c-share"></div></figure>
      <figure class="card"><figcaption><h3>MaxVio</h3><p>(max load − mean load) / mean load</p></figcaption><div class="chart" id="c-maxvio"></div></figure>
    </div>
    <figure class="card"><figcaption class="row"><div><h3>Expert load over steps</h3><p>load_i ÷ mean load: 1 = even (pale), 0 = idle (blue), ≥ 2 = overloaded (red)</p></div>
      <label class="layer">MoE layer <select id="layer"></select></label></figcaption>
      <div class="heatrow" id="heatrow"></div></figure>
    <figure class="card"><figcaption class="row"><div><h3>Where the bytes go</h3><p>a validation sentence, each byte coloured by its first expert (underline: second); struck out = dropped by capacity (dashed box: one of its experts dropped it). Hover a byte.</p></div></figcaption>
      <div class="samples" id="samples"></div>
    </figure>
    <div class="grid3">
      <figure class="card"><figcaption><h3>Router probabilities</h3><p id="probe-text">hover a byte above</p></figcaption><div class="chart" id="c-probs"></div></figure>
      <figure class="card"><figcaption><h3>Load per expert, last step</h3><p id="load-cap">share of the layer's assignments (%); dashed: even 1/E</p></figcaption><div class="chart" id="c-load"></div></figure>
      <figure class="card" id="stats-card"><figcaption><h3>Last step</h3><p>means over MoE layers</p></figcaption><table id="stats"></table></figure>
    </div>
  </section>
</main>
<footer>Switchyard trains this model with the same routers, losses, capacity, controllers and metrics as its command line, in a Web Worker. Charts by Apache ECharts. No network.</footer>`;
  for (const id of ['loss', 'cv', 'share', 'maxvio', 'probs', 'load']) charts[id] = initChart($(`#c-${id}`), null, { renderer: 'canvas' });
  $('#reset').onclick = () => activeRuns().forEach(resetRun);
  $('#run').onclick = () => {
    const go = !activeRuns().some((r) => r.running);
    for (const r of activeRuns()) if (!r.error) post(r, { type: go ? 'run' : 'pause' }); // the worker reports its state back
    scheduleRender();
  };
  $('#step').onclick = () => activeRuns().forEach((r) => { if (!r.error) post(r, { type: 'step', n: 1 }); });
  $<HTMLInputElement>('#ab').onchange = (e) => setAb((e.target as HTMLInputElement).checked);
  $<HTMLSelectElement>('#backend-choice').value = backendChoice;
  $<HTMLSelectElement>('#backend-choice').onchange = (e) => setBackend((e.target as HTMLSelectElement).value as BackendChoice);
  $<HTMLSelectElement>('#layer').onchange = (e) => { layer = Number((e.target as HTMLSelectElement).value); heatCache.clear(); scheduleRender(); };
  $<HTMLFormElement>('#settings').onchange = (e) => {
    const el = e.target as HTMLInputElement | HTMLSelectElement;
    const run = runs[tab]!;
    const key = el.name as keyof Settings;
    const v = el instanceof HTMLInputElement && el.type === 'number' ? Number(el.value) : el.value;
    (run.settings as unknown as Record<string, unknown>)[key] = v;
    resetRun(run);
    fillForm();
  };
  window.addEventListener('resize', () => { for (const c of Object.values(charts)) c.resize(); });
}

/** A worker keeps the backend it started on: a new choice starts new workers (same settings, step 0). */
function setBackend(choice: BackendChoice): void {
  backendChoice = choice;
  $<HTMLSelectElement>('#backend-choice').value = choice;
  for (const id of ['A', 'B'] as RunId[]) {
    const old = runs[id];
    if (!old) continue;
    old.worker.terminate();
    runs[id] = makeRun(id, old.settings);
  }
  buildHeatRow();
  scheduleRender();
}

function setAb(on: boolean): void {
  abMode = on;
  $<HTMLInputElement>('#ab').checked = on;
  if (on && !runs.B) runs.B = makeRun('B', { ...runs.A!.settings, balancing: runs.A!.settings.balancing === 'aux_free' ? 'none' : 'aux_free', router: ['softmax-topk', 'topk-softmax', 'sigmoid'].includes(runs.A!.settings.router) ? runs.A!.settings.router : 'softmax-topk' });
  if (!on && runs.B) { runs.B.worker.terminate(); delete runs.B; tab = 'A'; }
  fillForm();
  buildHeatRow();
  scheduleRender();
}

function fillForm(): void {
  $('#tabs').innerHTML = abMode
    ? (['A', 'B'] as RunId[]).map((id) => `<button data-tab="${id}" class="${id === tab ? 'on' : ''}" style="--c:${RUN_STYLE[id].color}">run ${id}</button>`).join('')
    : `<span class="solo">settings</span>`;
  for (const b of Array.from(document.querySelectorAll<HTMLButtonElement>('#tabs button'))) b.onclick = () => { tab = b.dataset.tab as RunId; fillForm(); };
  const s = runs[tab]!.settings;
  for (const el of Array.from(document.querySelectorAll<HTMLInputElement | HTMLSelectElement>('#settings [name]'))) el.value = String(s[el.name as keyof Settings]);
  const show = (f: string, on: boolean) => $(`[data-field="${f}"]`).classList.toggle('hidden', !on);
  show('size', s.task === 'lm');
  show('tau', s.router === 'gumbel');
  show('auxWeight', !['none', 'aux_free'].includes(s.balancing));
  show('biasRate', s.balancing === 'aux_free');
  show('capacity', s.drop !== 'dropless' || s.router === 'expert_choice');
  show('drop', s.router !== 'expert_choice');
  $('#settings').style.setProperty('--c', RUN_STYLE[tab].color);
}

// ---- rendering ------------------------------------------------------------------------------------------------

let renderPending = false;
let lastRender = 0;
function scheduleRender(): void {
  if (renderPending) return;
  renderPending = true;
  const wait = Math.max(0, 120 - (performance.now() - lastRender)); // ≤ 8 redraws a second while training
  setTimeout(() => requestAnimationFrame(() => { renderPending = false; lastRender = performance.now(); render(); }), wait);
}

function pts(r: Run, f: (x: MetricRecord) => number | null): Point[] {
  return minMaxDownsample(r.records.map((x) => x.step), r.records.map(f), MAX_POINTS);
}

function lineFor(run: Run, name: string, data: Point[], extra: Partial<LineSeries> = {}): LineSeries {
  return { name: abMode ? `${name} ${run.id}` : name, data, color: RUN_STYLE[run.id].color, dashed: RUN_STYLE[run.id].dashed, ...extra };
}

function setLine(id: string, option: Record<string, unknown>): void {
  const opt = revive(option) as Record<string, unknown>;
  const x = opt.xAxis as Record<string, unknown>;
  charts[id].setOption({ ...opt, xAxis: { ...x, axisLabel: { hideOverlap: true } }, legend: { ...(opt.legend as object), show: abMode }, grid: { left: 58, right: 14, top: abMode ? 30 : 12, bottom: 44 }, dataZoom: [] }, { notMerge: true, lazyUpdate: true });
}

const heatCache = new Map<RunId, { n: number; chart: ECharts }>();
function buildHeatRow(): void {
  for (const { chart } of heatCache.values()) chart.dispose();
  heatCache.clear();
  for (const id of Object.keys(heatCharts)) { heatCharts[id as RunId]?.dispose(); delete heatCharts[id as RunId]; }
  $('#heatrow').innerHTML = activeRuns().map((r) => `<div class="heat"><div class="tag" style="--c:${RUN_STYLE[r.id].color}">${abMode ? `run ${r.id}` : ''}</div><div class="chart" id="c-heat-${r.id}"></div></div>`).join('');
  for (const r of activeRuns()) heatCharts[r.id] = initChart($(`#c-heat-${r.id}`), null, { renderer: 'canvas' });
  $('#samples').innerHTML = activeRuns().map((r) => `<div class="sample" id="sample-${r.id}"><span class="tag" style="--c:${RUN_STYLE[r.id].color}">${abMode ? `run ${r.id}` : ''}</span><div class="bytes"></div></div>`).join('');
  sampleShown.clear();
  for (const b of Array.from(document.querySelectorAll<HTMLElement>('#samples .bytes'))) b.addEventListener('mouseover', onSampleHover);
}
const heatCharts: Partial<Record<RunId, ECharts>> = {};

function renderHeat(run: Run): void {
  const chart = heatCharts[run.id];
  if (!chart) return;
  const recs = run.records;
  const E = recs[0]?.expert_load[0]?.length ?? run.settings.experts;
  const L = recs[0]?.expert_load.length ?? 1;
  const l = Math.min(layer, L - 1);
  const height = chart.getHeight();
  const experts = Array.from({ length: E }, (_, i) => `e${i}`);
  if (!recs.length) { chart.setOption(revive({ ...heatmapOption('step', [], 'expert', experts, '× mean', height), series: [] }) as object, { notMerge: true }); return; }
  const buckets = stepBuckets(recs.map((r) => r.step), MAX_BUCKETS);
  const cells = loadRatioCells(recs.map((r) => r.expert_load[l]), buckets);
  const opt = heatmapOption('step', buckets.steps.map(([, b]) => String(b)), 'expert', experts, '× mean', height);
  chart.setOption(revive({ ...opt, grid: { ...(opt.grid as object), top: 8, bottom: 44 }, series: [] }) as object, { notMerge: true, lazyUpdate: true });
  chart.setOption({ series: [heatBitmapSeries(cells)] }, { lazyUpdate: true });
}

/** Which probe each sample box shows (redrawn only when it changes, so a hovered byte stays put while training). */
const sampleShown = new Map<RunId, string>();

function renderSample(run: Run): void {
  const box = document.querySelector<HTMLElement>(`#sample-${run.id} .bytes`);
  if (!box) return;
  const p = run.probe;
  const key = p ? `${p.step}:${layer}` : `none:${run.settings.task}`;
  if (sampleShown.get(run.id) === key && box.dataset.key === key) return;
  sampleShown.set(run.id, key);
  box.dataset.key = key;
  if (!p) { box.innerHTML = `<span class="muted">${run.settings.task === 'lm' ? 'routing appears after the first step' : 'the regression task has no text: its tokens are random vectors'}</span>`; return; }
  const lp = p.layers[Math.min(layer, p.layers.length - 1)];
  const E = lp.probs[0]?.length ?? 1;
  let spans = Array.from(box.querySelectorAll<HTMLElement>('span.b'));
  if (spans.length !== p.tokens.length) {
    box.innerHTML = p.tokens.map((_, t) => `<span class="b" data-t="${t}"></span>`).join('');
    spans = Array.from(box.querySelectorAll<HTMLElement>('span.b'));
  }
  p.tokens.forEach((b, t) => {
    const ex = lp.experts[t] ?? [], kept = lp.kept[t] ?? [];
    const first = ex[0], second = ex[1];
    const allDropped = ex.length === 0 || kept.every((k) => !k);
    const span = spans[t];
    span.textContent = b === 32 ? '␣' : b >= 33 && b < 127 ? String.fromCharCode(b) : '·';
    span.style.background = first !== undefined && !allDropped ? expertColor(first, E) : '';
    span.style.borderBottomColor = second !== undefined ? expertColor(second, E) : 'transparent';
    span.classList.toggle('drop', allDropped);
    span.classList.toggle('part', !allDropped && kept.some((k) => !k));
    span.classList.toggle('hot', hover?.run === run.id && hover.token === t);
  });
}

/** One hover handler per sample box (spans are updated in place, never re-bound). */
function onSampleHover(ev: MouseEvent): void {
  const span = (ev.target as HTMLElement).closest<HTMLElement>('span.b');
  const box = (ev.currentTarget as HTMLElement).closest<HTMLElement>('.sample');
  if (!span || !box) return;
  hover = { run: box.id.replace('sample-', '') as RunId, token: Number(span.dataset.t) };
  for (const s of Array.from(document.querySelectorAll('.bytes .b.hot'))) s.classList.remove('hot');
  span.classList.add('hot');
  renderProbe();
}

function renderProbe(): void {
  const run = hover ? runs[hover.run] : activeRuns()[0];
  const p = run?.probe;
  const t = hover?.token ?? 0;
  if (!run || !p) { charts.probs.clear(); return; }
  const lp = p.layers[Math.min(layer, p.layers.length - 1)];
  const probs = lp.probs[t] ?? [];
  const E = probs.length;
  const chosen = lp.experts[t] ?? [];
  const experts = Array.from({ length: E }, (_, i) => `e${i}`);
  const opt = revive(barOption('expert', experts, 'router probability', [{ name: 'p', data: probs }])) as Record<string, unknown>;
  (opt.series as Array<Record<string, unknown>>)[0].data = probs.map((v, i) => ({ value: +v.toPrecision(4), itemStyle: { color: chosen.includes(i) ? expertColor(i, E) : '#d0d5dc' } }));
  charts.probs.setOption({ ...opt, legend: { show: false }, grid: { left: 56, right: 12, top: 12, bottom: 40 } }, { notMerge: true });
  const b = p.tokens[t];
  const ch = b >= 32 && b < 127 ? `'${String.fromCharCode(b)}'` : `byte ${b}`;
  const picks = chosen.map((e, j) => `<b style="color:${expertColor(e, E)}">e${e}</b> ${sig(probs[e], 3)}${lp.kept[t][j] ? '' : ' <span class="dropped">dropped</span>'}`).join(', ');
  $('#probe-text').innerHTML = `${abMode ? `run ${run.id}, ` : ''}token ${t} ${esc(ch)}, layer ${Math.min(layer, p.layers.length - 1)}, step ${p.step}<br>→ ${picks || '<span class="dropped">no expert (dropped)</span>'}`;
}

function render(): void {
  const act = activeRuns();
  const a = act[0];
  const lm = act.every((r) => r.settings.task === 'lm');
  $('#loss-cap').textContent = lm ? 'cross-entropy of the next byte (nats/byte); ln 256 = 5.55 is a uniform guess' : 'task loss per step (nats/byte for the LM, MSE for the regression)';
  setLine('loss', lineOption('loss', act.map((r) => lineFor(r, 'loss', pts(r, (x) => x.loss)))));
  setLine('cv', lineOption('CV (σ/μ)', act.map((r) => lineFor(r, 'CV', pts(r, (x) => x.load_cv))), { yMin: 0 }));
  const E = a.records[0]?.expert_load[0]?.length ?? a.settings.experts;
  setLine('share', lineOption('max-load share (%)', act.map((r) => lineFor(r, 'max share', pts(r, (x) => 100 * x.max_load_share))), { yMin: 0, markY: { value: 100 / E, label: `1/E = ${(100 / E).toFixed(1)}%` } }));
  setLine('maxvio', lineOption('MaxVio (× mean)', act.map((r) => lineFor(r, 'MaxVio', pts(r, (x) => x.maxvio))), { yMin: 0 }));
  // layer selector follows the model
  const L = Math.max(...act.map((r) => r.records[0]?.expert_load.length ?? r.layers ?? 1), 1);
  const sel = $<HTMLSelectElement>('#layer');
  if (sel.options.length !== L) { sel.innerHTML = Array.from({ length: L }, (_, l) => `<option value="${l}">${l}</option>`).join(''); layer = Math.min(layer, L - 1); sel.value = String(layer); }
  for (const r of act) { renderHeat(r); renderSample(r); }
  renderProbe();
  renderLoad(act);
  // header
  const steps = act.map((r) => r.records.length);
  $('#stepno').textContent = steps.join(' · ');
  const ms = act.map((r) => { const w = r.stepMs.slice(-20); return w.length ? (w.reduce((x, y) => x + y, 0) / w.length).toFixed(0) : '–'; });
  $('#speed').textContent = ms.join(' · ');
  const running = act.some((r) => r.running);
  $('#run').textContent = running ? '❚❚' : '▶';
  $('#run').classList.toggle('running', running);
  $('#backend').innerHTML = `trains on <b>${esc(a.backend)}</b>${a.backendNote ? `<small>${esc(a.backendNote)}</small>` : ''}`;
  $('#exports').innerHTML = act.map((r) => `<button class="export" data-run="${r.id}" ${r.records.length ? '' : 'disabled'}>Export ${abMode ? `run ${r.id}` : 'run'}</button>`).join('');
  for (const b of Array.from(document.querySelectorAll<HTMLButtonElement>('#exports button'))) b.onclick = () => void exportRun(runs[b.dataset.run as RunId]!);
  $('#problems').textContent = act.filter((r) => r.error).map((r) => `${abMode ? `run ${r.id}: ` : ''}${r.error}`).join('\n');
  renderStats(act);
}

/** The last step's load share per expert of the selected layer: one bar per expert in its colour (the bytes' legend). */
function renderLoad(act: Run[]): void {
  const withData = act.filter((r) => r.records.length);
  if (!withData.length) { charts.load.clear(); return; }
  const E = withData[0].records[0].expert_load[0].length;
  const experts = Array.from({ length: E }, (_, i) => `e${i}`);
  const opt = revive(barOption('expert', experts, 'load share (%)', withData.map((r) => {
    const rec = r.records[r.records.length - 1];
    const row = rec.expert_load[Math.min(layer, rec.expert_load.length - 1)];
    const sum = row.reduce((x, y) => x + y, 0) || 1;
    return { name: abMode ? `run ${r.id}` : 'share', data: row.map((v) => (100 * v) / sum), color: r.id === 'A' ? '#57606a' : '#c9ced6' };
  }), { markY: { value: 100 / E, label: '' } })) as Record<string, unknown>;
  (opt.series as Array<Record<string, unknown>>).forEach((ser, j) => {
    ser.data = (ser.data as number[]).map((v, i) => ({ value: v, itemStyle: { color: expertColor(i, E), opacity: j === 1 ? 0.55 : 1, decal: j === 1 ? { symbol: 'rect', dashArrayX: [1, 0], dashArrayY: [2, 3], rotation: -0.8 } : undefined } }));
  });
  charts.load.setOption({ ...opt, legend: { show: withData.length > 1, top: 0 }, grid: { left: 56, right: 12, top: withData.length > 1 ? 28 : 12, bottom: 40 } }, { notMerge: true });
}

function renderStats(act: Run[]): void {
  const rows: Array<[string, (r: Run, last: MetricRecord | undefined) => string]> = [
    ['step', (r) => String(r.records.length)],
    ['task loss', (_, x) => sig(x?.loss)],
    ['load CV', (_, x) => sig(x?.load_cv, 3)],
    ['max-load share', (_, x) => (x ? `${(100 * x.max_load_share).toFixed(1)}%` : '–')],
    ['MaxVio', (_, x) => sig(x?.maxvio, 3)],
    ['dropped', (_, x) => (x?.dropped_fraction !== undefined ? `${(100 * x.dropped_fraction).toFixed(1)}%` : '–')],
    ['router entropy', (_, x) => sig(x?.router_entropy, 3)],
    ['aux losses', (_, x) => (x ? Object.entries(x.aux).map(([k, v]) => `${k} ${sig(v, 3)}`).join(', ') || '–' : '–')],
    ['parameters', (r) => (r.params ? r.params.toLocaleString('en') : '–')],
  ];
  $('#stats').innerHTML = `<thead><tr><th></th>${act.map((r) => `<th style="color:${RUN_STYLE[r.id].color}">${abMode ? `run ${r.id}` : 'value'}</th>`).join('')}</tr></thead><tbody>` +
    rows.map(([name, f]) => `<tr><td>${name}</td>${act.map((r) => `<td class="num">${esc(f(r, r.records[r.records.length - 1]))}</td>`).join('')}</tr>`).join('') + '</tbody>';
}

// ---- export ---------------------------------------------------------------------------------------------------

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url; a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** config.yaml (the worker's resolved config, steps = steps done) and metrics.jsonl (one line per step, as the CLI writes). */
async function exportRun(run: Run): Promise<void> {
  const res = await new Promise<{ configYaml: string; steps: number }>((resolve) => { run.exportWaiter = resolve; post(run, { type: 'export' }); });
  const recs = run.records.filter((r) => r.step <= res.steps);
  download('config.yaml', res.configYaml, 'text/yaml');
  download('metrics.jsonl', recs.map(toJsonLine).join(''), 'application/x-ndjson');
}

// ---- start ----------------------------------------------------------------------------------------------------

layout();
runs.A = makeRun('A', { ...DEFAULT_SETTINGS });
buildHeatRow();
fillForm();
render();
api.ready = true;
