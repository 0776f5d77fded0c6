/**
 * The dashboard's one HTML page: the report's style and chart script (page.ts), ECharts inlined (no request
 * leaves the server), and a small client that opens the event stream and redraws each run's column. Each run
 * arrives as a payload (dashboard.ts RunPayload): new charts rebuild the column, otherwise the charts are updated
 * in place (zoom, legend choices and the selected layer are kept). window.__switchyard publishes the state for
 * tests: updates received, charts by id, errors.
 */
import { CHART_LIB, CSS, echartsBundle, esc } from './page.ts';

const DASH_CSS = `
.runs{display:grid;gap:18px;grid-template-columns:repeat(var(--n),minmax(0,1fr))}.runs.multi .grid{grid-template-columns:1fr}
.run{min-width:0}.run-head{background:#fff;border:1px solid #dfe3e8;border-radius:6px;padding:10px 14px 12px;position:sticky;top:0;z-index:5;box-shadow:0 1px 4px rgba(0,0,0,.04)}
.run-title{display:flex;align-items:baseline;gap:10px}.run-title h2{font-size:17px;margin:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.changed{margin-left:auto;color:#57606a;font-size:12px;white-space:nowrap}
.badge{font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.04em;border-radius:10px;padding:2px 8px;color:#fff;background:#8b949e}
.badge.training{background:#2e8540}.badge.finished{background:#4e79a7}.badge.error{background:#d7191c}.badge.stopped{background:#8b949e}.badge.waiting{background:#b08800}
.progress{height:6px;background:#eef0f3;border-radius:3px;margin:8px 0 8px;overflow:hidden}.progress div{height:100%;background:#4e79a7;transition:width .3s}
.kpis{display:flex;flex-wrap:wrap;gap:6px 18px}.kpi{display:flex;flex-direction:column;min-width:64px}.kpi span{font-size:11px;color:#57606a;text-transform:uppercase;letter-spacing:.03em}
.kpi b{font-size:16px;font-weight:600;font-variant-numeric:tabular-nums}.run-msg{margin:8px 0 0;color:#57606a}.run-msg.err{color:#d7191c;font-weight:600}
.cfg{margin-top:12px}.conn{font-size:12px;color:#9fb3c8;margin-left:12px}.conn.down{color:#ffb4a8}
`;

/** The dashboard client: plain ES2017 after CHART_LIB. */
const DASH_CLIENT = `(function () {
'use strict';
var SC = window.SwitchyardCharts;
var state = window.__switchyard = { ready: false, connected: false, updates: 0, charts: {}, errors: [], runs: {} };
var root = document.getElementById('runs');
var conn = document.getElementById('conn');
function column(i) {
  var el = document.getElementById('run-' + i);
  if (!el) {
    el = document.createElement('div');
    el.className = 'run';
    el.id = 'run-' + i;
    el.innerHTML = '<div class="run-head"></div><div class="run-body"></div>';
    var after = null;
    Array.prototype.forEach.call(root.children, function (c) { if (!after && Number(c.id.slice(4)) > i) after = c; });
    root.insertBefore(el, after);
  }
  return el;
}
function layerOf(runEl, selector) {
  var sel = runEl.querySelector('select[data-selector="' + selector + '"]');
  return sel ? Number(sel.value) : 0;
}
function rebuild(el, p, rs) {
  rs.specs.forEach(function (s) { var c = state.charts[s.id]; if (c) { c.dispose(); delete state.charts[s.id]; } var t = document.getElementById('tip-' + s.id); if (t) t.remove(); });
  el.querySelector('.run-body').innerHTML = p.html;
  p.charts.forEach(function (spec) {
    try {
      state.charts[spec.id] = SC.draw(spec, document.getElementById('chart-' + spec.id), 0);
    } catch (e) {
      state.errors.push(spec.id + ': ' + (e && e.message));
      console.error('chart ' + spec.id + ' failed:', e);
    }
  });
  Array.prototype.forEach.call(el.querySelectorAll('select[data-selector]'), function (sel) {
    sel.addEventListener('change', function () {
      var i = Number(sel.value), cur = state.runs[p.index];
      cur.specs.forEach(function (spec) {
        var c = state.charts[spec.id];
        if (c && spec.layered && spec.layered.selector === sel.getAttribute('data-selector')) SC.selectLayer(c, spec, i);
      });
    });
  });
  echarts.connect('steps');
}
function apply(p) {
  var el = column(p.index), rs = state.runs[p.index] || { layoutKey: null, specs: [] };
  el.querySelector('.run-head').innerHTML = p.headHtml;
  if (rs.layoutKey !== p.layoutKey) {
    rebuild(el, p, rs);
  } else {
    p.charts.forEach(function (spec) {
      var c = state.charts[spec.id];
      if (!c) return;
      var cap = document.getElementById('chart-' + spec.id).parentNode.querySelector('figcaption');
      if (cap) { cap.querySelector('h3').textContent = spec.title; var cp = cap.querySelector('p'); if (cp && spec.caption) cp.textContent = spec.caption; }
      try {
        SC.update(c, spec, spec.layered ? layerOf(el, spec.layered.selector) : 0);
      } catch (e) {
        state.errors.push(spec.id + ': ' + (e && e.message));
        console.error('chart ' + spec.id + ' update failed:', e);
      }
    });
  }
  state.runs[p.index] = { layoutKey: p.layoutKey, specs: p.charts, status: p.status, step: p.step, records: p.records };
  tick();
}
function tick() {
  Array.prototype.forEach.call(document.querySelectorAll('.changed'), function (el) {
    var t = Number(el.getAttribute('data-changed'));
    el.textContent = t ? 'last logged step ' + Math.max(0, Math.round((Date.now() - t) / 1000)) + ' s ago' : '';
  });
}
setInterval(tick, 1000);
var es = new EventSource('events');
es.addEventListener('run', function (e) {
  apply(JSON.parse(e.data));
  state.updates++;
  state.ready = true;
});
es.onopen = function () { state.connected = true; conn.textContent = 'live'; conn.className = 'conn'; };
es.onerror = function () { state.connected = false; conn.textContent = 'connection lost: retrying…'; conn.className = 'conn down'; };
var pendingResize = null;
window.addEventListener('resize', function () {
  clearTimeout(pendingResize);
  pendingResize = setTimeout(function () { for (var id in state.charts) state.charts[id].resize(); }, 100);
});
})();`;

/** The dashboard page for runs with these names (columns are filled by the event stream). */
export function dashboardHtml(names: string[]): string {
  const ec = echartsBundle();
  const n = Math.max(1, names.length);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(names.join(' · '))} · Switchyard dashboard</title><style>${CSS}${DASH_CSS}</style></head>
<body><header class="top"><div class="wrap"><div class="brand">Switchyard dashboard<span class="conn down" id="conn">connecting…</span></div>
<h1>${esc(names.join(' · '))}</h1><div class="sub">live from metrics.jsonl · charts as in switchyard report</div></div></header>
<main class="wrap"${n > 1 ? ` style="max-width:${Math.min(2400, 640 * n + 40)}px"` : ''}><div id="runs" class="runs${n > 1 ? ' multi' : ''}" style="--n:${n}"></div>
<footer>Served by switchyard dashboard · charts by Apache ECharts ${esc(ec.version)}, inlined; the page talks only to this server.</footer>
</main>
<script>${ec.source}</script>
<script>${CHART_LIB}</script>
<script>${DASH_CLIENT}</script>
</body></html>
`;
}
