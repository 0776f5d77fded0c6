/**
 * Renders a PageSpec as one self-contained HTML file: ECharts (read from node_modules) and the data are inlined,
 * nothing is fetched, so the page opens offline. The page script revives formatter references and base64 heatmap
 * cells, draws every chart, wires the layer selectors, and sets window.__switchyard.ready for tests and benches.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { ChartSpec, PageSpec, Section, TableSpec } from './charts.ts';
import { HEAT_SCALE } from './downsample.ts';

let echartsCache: { source: string; version: string } | null = null;

/** The ECharts browser bundle (dist/echarts.min.js) and its version, read once. */
export function echartsBundle(): { source: string; version: string } {
  if (echartsCache) return echartsCache;
  const require = createRequire(import.meta.url);
  const file = require.resolve('echarts/dist/echarts.min.js');
  const source = fs.readFileSync(file, 'utf8');
  // Inlined in <script>: the HTML parser would end the element at the first "</script".
  if (/<\/script/i.test(source)) throw new Error(`report: ${file} contains "</script" and cannot be inlined`);
  const version = (JSON.parse(fs.readFileSync(file.replace(/dist[\\/]echarts\.min\.js$/, 'package.json'), 'utf8')) as { version: string }).version;
  echartsCache = { source, version };
  return echartsCache;
}

/** Escapes text for HTML element content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON safe inside <script type="application/json">: '<' escaped so no "</script" or "<!--" can appear. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** An HTML table card. */
export function table(t: TableSpec, cls = ''): string {
  const num = new Set(t.numeric ?? []);
  const td = (v: string, i: number, tag: string) => `<${tag}${num.has(i) ? ' class="num"' : ''}>${esc(v)}</${tag}>`;
  return `<div class="table ${cls}">${t.title ? `<h3>${esc(t.title)}</h3>` : ''}<table><thead><tr>${t.header.map((h, i) => td(h, i, 'th')).join('')}</tr></thead>` +
    `<tbody>${t.rows.map((r) => `<tr>${r.map((v, i) => td(v, i, 'td')).join('')}</tr>`).join('')}</tbody></table></div>`;
}

function chartCard(c: ChartSpec): string {
  return `<figure class="card${c.wide ? ' wide' : ''}"><figcaption><h3>${esc(c.title)}</h3>${c.caption ? `<p>${esc(c.caption)}</p>` : ''}</figcaption>` +
    `<div class="chart" id="chart-${esc(c.id)}" data-chart="${esc(c.id)}" style="height:${c.height ?? 300}px"></div></figure>`;
}

/** A section: heading with its selectors, intro, tables and the grid of chart cards. */
export function section(s: Section): string {
  const selectors = (s.selectors ?? []).map((sel) => `<label class="selector">${esc(sel.label)} <select data-selector="${esc(sel.id)}">` +
    `${sel.options.map((o, i) => `<option value="${i}">${esc(o)}</option>`).join('')}</select></label>`).join('');
  return `<section><div class="section-head"><h2>${esc(s.title)}</h2>${selectors}</div>${s.intro ? `<p class="intro">${esc(s.intro)}</p>` : ''}` +
    `${(s.tables ?? []).map((t) => table(t, 'wide-table')).join('')}<div class="grid">${s.charts.map(chartCard).join('')}</div></section>`;
}

/** The page style, shared by the report and the dashboard. */
export const CSS = `
*{box-sizing:border-box}body{margin:0;background:#f4f5f7;color:#1f2328;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.top{background:#1f2a3a;color:#fff;padding:18px 0 16px}.top .brand{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:#9fb3c8}
.top h1{margin:2px 0 2px;font-size:22px;font-weight:600}.top .sub{color:#c9d4e0;font-size:13px;word-break:break-all}
.wrap{max-width:1240px;margin:0 auto;padding:0 20px}main.wrap{padding-top:18px;padding-bottom:28px}
.header{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.table{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:10px 14px;overflow-x:auto}.table h3{margin:0 0 6px;font-size:14px}
.wide-table{margin-bottom:14px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:3px 8px;text-align:left;border-bottom:1px solid #eef0f3;vertical-align:top;overflow-wrap:anywhere}th{color:#57606a;font-weight:600;background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tbody tr:nth-child(even){background:#fafbfc}
section{margin-top:26px}.section-head{display:flex;align-items:center;gap:18px;border-bottom:2px solid #dfe3e8;padding-bottom:4px;margin-bottom:10px}
h2{margin:0;font-size:18px;font-weight:600}.intro{margin:0 0 10px;color:#57606a}
.selector{font-size:13px;color:#57606a}.selector select{margin-left:6px;font:inherit;padding:2px 6px;border:1px solid #c9d1d9;border-radius:4px;background:#fff}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px}@media(max-width:900px){.grid{grid-template-columns:1fr}}
.card{margin:0;background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:10px 12px 6px;min-width:0}.card.wide{grid-column:1/-1}
figcaption h3{margin:0;font-size:14px;font-weight:600}figcaption p{margin:1px 0 4px;color:#57606a;font-size:12px}
.chart{width:100%}.notes{margin-top:22px;color:#57606a;font-size:12.5px}.notes li{margin:2px 0}
details{margin-top:16px;background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:8px 12px}summary{cursor:pointer;font-weight:600}
.heat-tip{position:fixed;display:none;z-index:10;pointer-events:none;background:#fff;border:1px solid #ccc;border-radius:4px;padding:5px 8px;font-size:12px;box-shadow:0 2px 8px rgba(0,0,0,.15)}
pre{font-size:12px;overflow-x:auto;margin:8px 0 0}footer{margin-top:20px;color:#8b949e;font-size:12px}
`;

/**
 * The chart code shared by the report page and the live dashboard: plain ES2017, runs after the inlined ECharts
 * bundle and defines window.SwitchyardCharts { draw, update, selectLayer } over ChartSpecs (charts.ts).
 */
export const CHART_LIB = `(function () {
'use strict';
var SCALE = ${HEAT_SCALE};
function sig(v, d) {
  if (typeof v !== 'number' || !isFinite(v)) return '–';
  if (v === 0) return '0';
  var a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(d - 1);
  return String(Number(v.toPrecision(d)));
}
// Latest decoded cells (and the spec they came with) per heatmap chart: the tooltip reads them.
var heatData = {};
function hexRgb(h) { return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]; }
function colorTable(colors) {
  var stops = colors.map(hexRgb), out = new Uint8ClampedArray(256 * 3);
  for (var i = 0; i < 256; i++) {
    var t = (i / 255) * (stops.length - 1), k = Math.min(stops.length - 2, Math.floor(t)), f = t - k;
    for (var c = 0; c < 3; c++) out[3 * i + c] = Math.round(stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f);
  }
  return out;
}
function decodeCells(h) {
  var bin = atob(h.b64), n = h.rows * h.cols, out = new Float32Array(n);
  for (var k = 0; k < n; k++) out[k] = (bin.charCodeAt(2 * k) | (bin.charCodeAt(2 * k + 1) << 8)) / SCALE;
  return out;
}
// One bitmap for all cells, nearest-neighbour at device pixels: no blur, no per-cell elements.
function heatSeries(h, spec) {
  var cells = decodeCells(h), rows = h.rows, cols = h.cols, m = spec.meta || {};
  var max = m.max || 2, table = colorTable(m.colors || ['#2c7bb6', '#f7f7f7', '#d7191c']), cache = null;
  heatData[spec.id] = { cells: cells, rows: rows, cols: cols, spec: spec };
  return {
    type: 'custom', name: h.name, silent: true, data: [[0]],
    renderItem: function (params) {
      var r = params.coordSys, dpr = window.devicePixelRatio || 1;
      var w = Math.max(1, Math.round(r.width * dpr)), ht = Math.max(1, Math.round(r.height * dpr));
      if (!cache || cache.width !== w || cache.height !== ht) {
        var cv = document.createElement('canvas');
        cv.width = w; cv.height = ht;
        var ctx = cv.getContext('2d'), img = ctx.createImageData(w, ht), px = img.data, colOf = new Int32Array(w);
        for (var x = 0; x < w; x++) colOf[x] = Math.min(cols - 1, Math.floor((x * cols) / w));
        for (var y = 0, o = 0; y < ht; y++) {
          var base = Math.min(rows - 1, Math.floor((y * rows) / ht)) * cols;
          for (var x2 = 0; x2 < w; x2++, o += 4) {
            var i = 3 * Math.min(255, Math.max(0, Math.round((cells[base + colOf[x2]] / max) * 255)));
            px[o] = table[i]; px[o + 1] = table[i + 1]; px[o + 2] = table[i + 2]; px[o + 3] = 255;
          }
        }
        ctx.putImageData(img, 0, 0);
        cache = cv;
      }
      return { type: 'image', style: { image: cache, x: r.x, y: r.y, width: r.width, height: r.height } };
    }
  };
}
function attachHeatTip(chart, id) {
  var tip = document.createElement('div'), zr = chart.getZr();
  tip.className = 'heat-tip';
  tip.id = 'tip-' + id;
  document.body.appendChild(tip);
  zr.on('mousemove', function (e) {
    var d = heatData[id], at = [e.offsetX, e.offsetY];
    if (!d || !chart.containPixel({ gridIndex: 0 }, at)) { tip.style.display = 'none'; return; }
    var p = chart.convertFromPixel({ gridIndex: 0 }, at);
    var x = Math.max(0, Math.min(d.cols - 1, Math.round(p[0]))), y = Math.max(0, Math.min(d.rows - 1, Math.round(p[1])));
    tip.innerHTML = FORMATTERS.heat(d.spec)({ value: [x, y, d.cells[y * d.cols + x]] });
    tip.style.display = 'block';
    var ev = e.event, left = ev.clientX + 14;
    if (left + tip.offsetWidth > window.innerWidth - 8) left = ev.clientX - 14 - tip.offsetWidth;
    tip.style.left = left + 'px';
    tip.style.top = (ev.clientY + 14) + 'px';
  });
  zr.on('globalout', function () { tip.style.display = 'none'; });
  return tip;
}
function escHtml(s) {
  return String(s).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; });
}
var FORMATTERS = {
  seriesName: function () { return function (p) { return p.seriesName; }; },
  tradeoff: function () { return function (p) { return escHtml(p.seriesName) + ': CV ' + sig(p.value[0], 4) + ', loss ' + sig(p.value[1], 4); }; },
  sig4: function () { return function (v) { return Array.isArray(v) ? sig(v[1], 4) : sig(v, 4); }; },
  axis: function () { return function (v) { return sig(v, 3); }; },
  heat: function (spec) {
    var xa = spec.option.xAxis, ya = spec.option.yAxis, m = spec.meta || {};
    return function (p) {
      var x = p.value[0], y = p.value[1], r = m.stepRanges && m.stepRanges[x];
      var xl = r ? 'steps ' + r[0] + (r[1] !== r[0] ? '–' + r[1] : '') : xa.name + ' ' + xa.data[x];
      return ya.name + ' ' + ya.data[y] + '<br>' + xl + '<br><b>' + p.value[2].toFixed(3) + '</b> ' + (m.unit || '');
    };
  }
};
function revive(v, spec) {
  if (Array.isArray(v)) return v.map(function (x) { return revive(x, spec); });
  if (v && typeof v === 'object') {
    if (v['@heatSeries'] !== undefined) return heatSeries(v['@heatSeries'], spec);
    if (typeof v['@fmt'] === 'string') {
      if (!Object.prototype.hasOwnProperty.call(FORMATTERS, v['@fmt'])) throw new Error('unknown formatter ' + v['@fmt']);
      return FORMATTERS[v['@fmt']](spec);
    }
    var o = {};
    for (var k in v) o[k] = revive(v[k], spec);
    return o;
  }
  return v;
}
function optionOf(spec, layer) {
  var opt = revive(spec.option, spec);
  if (spec.layered) opt.series = revive(spec.layered.series[Math.min(layer || 0, spec.layered.series.length - 1)], spec);
  return opt;
}
// Draws a chart into el; layer picks the layered series.
function draw(spec, el, layer) {
  var chart = echarts.init(el, null, { renderer: 'canvas' });
  chart.setOption(optionOf(spec, layer));
  if (spec.group) chart.group = spec.group;
  if (heatData[spec.id]) attachHeatTip(chart, spec.id);
  return chart;
}
// Redraws a chart with a newer spec of the same id (series replaced, zoom and legend choices kept).
function update(chart, spec, layer) {
  chart.setOption(optionOf(spec, layer), { replaceMerge: ['series'] });
}
function selectLayer(chart, spec, i) {
  chart.setOption({ series: revive(spec.layered.series[i], spec) }, { replaceMerge: ['series'] });
}
window.SwitchyardCharts = { draw: draw, update: update, selectLayer: selectLayer, sig: sig };
})();`;

/** The report page script: draws every chart of the inlined data, wires the layer selectors. */
const CLIENT = `(function () {
'use strict';
var state = window.__switchyard = { ready: false, charts: {}, errors: [], renderMs: null, readyAt: null, timings: {} };
var data = JSON.parse(document.getElementById('report-data').textContent);
var SC = window.SwitchyardCharts;
var t0 = performance.now();
data.charts.forEach(function (spec) {
  var t1 = performance.now();
  try {
    state.charts[spec.id] = SC.draw(spec, document.getElementById('chart-' + spec.id), 0);
  } catch (e) {
    state.errors.push(spec.id + ': ' + (e && e.message));
    console.error('chart ' + spec.id + ' failed:', e);
  }
  state.timings[spec.id] = Math.round(performance.now() - t1);
});
echarts.connect('steps');
Array.prototype.forEach.call(document.querySelectorAll('select[data-selector]'), function (sel) {
  sel.addEventListener('change', function () {
    var i = Number(sel.value);
    data.charts.forEach(function (spec) {
      var c = state.charts[spec.id];
      if (c && spec.layered && spec.layered.selector === sel.getAttribute('data-selector')) SC.selectLayer(c, spec, i);
    });
  });
});
var pendingResize = null;
window.addEventListener('resize', function () {
  clearTimeout(pendingResize);
  pendingResize = setTimeout(function () { for (var id in state.charts) state.charts[id].resize(); }, 100);
});
state.renderMs = performance.now() - t0;
requestAnimationFrame(function () { state.readyAt = performance.now(); state.ready = true; });
})();`;

/** The whole HTML document. */
export function renderPage(page: PageSpec, generatedAt = new Date()): string {
  const ec = echartsBundle();
  const charts = page.sections.flatMap((s) => s.charts);
  const ids = new Set<string>();
  for (const c of charts) {
    if (ids.has(c.id)) throw new Error(`report: two charts have the id ${c.id}`);
    ids.add(c.id);
  }
  const notes = page.notes.length ? `<ul class="notes">${page.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '';
  const raw = page.raw ? `<details><summary>${esc(page.raw.title)}</summary><pre>${esc(page.raw.text)}</pre></details>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(page.title)}</title><style>${CSS}</style></head>
<body><header class="top"><div class="wrap"><div class="brand">Switchyard report</div><h1>${esc(page.title)}</h1><div class="sub">${esc(page.subtitle)}</div></div></header>
<main class="wrap">${page.header.length ? `<div class="header">${page.header.map((t) => table(t)).join('')}</div>` : ''}
${page.sections.map(section).join('\n')}
${notes}${raw}
<footer>Generated by switchyard report on ${esc(generatedAt.toISOString())} · charts by Apache ECharts ${esc(ec.version)}, inlined; the page needs no network.</footer>
</main>
<script>${ec.source}</script>
<script>${CHART_LIB}</script>
<script type="application/json" id="report-data">${scriptJson({ charts })}</script>
<script>${CLIENT}</script>
</body></html>
`;
}
