/**
 * The report page's model: sections of tables and charts. A chart is a plain-JSON ECharts option (so it can be
 * inlined as data); objects {"@fmt": NAME} stand for the page's formatter functions and objects {"@heatSeries": …}
 * for base64 heatmap cells, both revived in the browser (page.ts). Colours are fixed per metric across every chart.
 */
import { encodeCells, roundSig, type Point } from './downsample.ts';

/**
 * A reference to one of the page's formatter functions. An object, never a string: text from the data (a method
 * name, a file name) is always a plain string, so it cannot be mistaken for a formatter.
 */
export const fmt = (name: 'axis' | 'sig4' | 'seriesName' | 'tradeoff'): { '@fmt': string } => ({ '@fmt': name });

/** One chart card. */
export interface ChartSpec {
  id: string;
  title: string;
  /** one line under the title: what is plotted, with its formula or unit. */
  caption?: string;
  /** spans the full page width. */
  wide?: boolean;
  /** pixels (default 300). */
  height?: number;
  /** charts of one group share the tooltip cursor (echarts.connect). */
  group?: string;
  /** ECharts option, plain JSON. */
  option: Record<string, unknown>;
  /** values the page's formatters read (e.g. heatmap step ranges). */
  meta?: Record<string, unknown>;
  /** a layer selector: option.series is replaced by series[i] when selector `selector` picks item i. */
  layered?: { selector: string; series: unknown[][] };
}

/** An HTML table; cells are preformatted strings (numbers formatted by the builder). */
export interface TableSpec {
  title?: string;
  header: string[];
  rows: string[][];
  /** column indices aligned right (numbers). */
  numeric?: number[];
}

/** A drop-down that drives every chart whose `layered.selector` is its id. */
export interface SelectorSpec {
  id: string;
  label: string;
  options: string[];
}

/** A titled part of the page: tables, then a grid of charts, optionally driven by selectors. */
export interface Section {
  title: string;
  intro?: string;
  tables?: TableSpec[];
  selectors?: SelectorSpec[];
  charts: ChartSpec[];
}

/** The whole page: heading, header tables, sections, notes. */
export interface PageSpec {
  /** <title> and the page heading. */
  title: string;
  /** a line under the heading (source path, kind). */
  subtitle: string;
  /** tables in the header: key config and summary numbers. */
  header: TableSpec[];
  sections: Section[];
  /** notes shown at the end (downsampling, missing inputs). */
  notes: string[];
  /** raw text shown in a collapsed block (e.g. config.yaml). */
  raw?: { title: string; text: string };
}

/** Tableau 10: distinguishable, colour-blind friendlier than ECharts' default. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** One colour per metric, used by every chart that plots it. */
export const COLORS = {
  loss: '#4e79a7', val: '#f28e2b', lr: '#59a14f', gradNorm: '#9c755f', cv: '#4e79a7', maxvio: '#e15759', maxShare: '#59a14f',
  entropy: '#b07aa1', dropped: '#e15759', capacity: '#76b7b2', dead: '#9c755f', compute: '#4e79a7', comm: '#f28e2b', idle: '#bab0ac',
  before: '#bab0ac', eplb: '#f28e2b', after: '#4e79a7', flat: '#f28e2b', hierarchical: '#4e79a7', even: '#555555',
} as const;

/** Diverging map for load ÷ mean load: idle (blue) → even at 1 (pale) → overloaded (red), clipped at 2. */
export const LOAD_RATIO_COLORS = ['#2c7bb6', '#abd9e9', '#f7f7f7', '#fdae61', '#d7191c'];

/** A line series over steps. */
export interface LineSeries {
  name: string;
  data: Point[];
  color?: string;
  /** draw points only (validation). */
  points?: boolean;
  dashed?: boolean;
  /** thin line (many overlaid runs). */
  thin?: boolean;
}

/** Shared axis/grid style: axis names with units, light split lines. */
export function valueAxis(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'value', name, nameLocation: 'middle', nameGap: 50, scale: true, splitLine: { lineStyle: { color: '#eee' } }, axisLabel: { formatter: fmt('axis') }, ...extra };
}

const GRID = { left: 70, right: 24, top: 36, bottom: 52, containLabel: false };

/** An ECharts line chart over steps; values rounded to 5 significant digits. */
export function lineOption(yName: string, series: LineSeries[], extra: { yMin?: number; yMax?: number; markY?: { value: number; label: string }; xName?: string } = {}): Record<string, unknown> {
  return {
    animation: false,
    grid: GRID,
    legend: { top: 0, type: 'scroll', data: [...new Set(series.map((s) => s.name))] },
    tooltip: { trigger: 'axis', valueFormatter: fmt('sig4'), axisPointer: { type: 'line' } },
    xAxis: { type: 'value', name: extra.xName ?? 'step', nameLocation: 'middle', nameGap: 28, min: 'dataMin', max: 'dataMax', splitLine: { show: false } },
    yAxis: valueAxis(yName, { ...(extra.yMin !== undefined ? { min: extra.yMin } : {}), ...(extra.yMax !== undefined ? { max: extra.yMax } : {}) }),
    dataZoom: [{ type: 'inside', xAxisIndex: 0 }],
    series: series.map((s, i) => ({
      name: s.name,
      type: s.points ? 'scatter' : 'line',
      data: s.data.map(([x, y]) => [x, roundSig(y)]),
      color: s.color ?? PALETTE[i % PALETTE.length],
      ...(s.points ? { symbolSize: 6 } : { showSymbol: s.data.length < 40, symbolSize: 4, connectNulls: false, lineStyle: { width: s.thin ? 1 : 1.6, type: s.dashed ? 'dashed' : 'solid' } }),
      ...(i === 0 && extra.markY ? { markLine: markLineY(extra.markY.value, extra.markY.label) } : {}),
    })),
  };
}

/** A horizontal reference line at y = value (e.g. even load 1/E). */
export function markLineY(value: number, label: string): Record<string, unknown> {
  return { silent: true, symbol: 'none', lineStyle: { color: COLORS.even, type: 'dashed' }, label: { formatter: label, position: 'insideEndTop' }, data: [{ yAxis: value }] };
}

/** Bar series in ECharts form. */
export function barSeries(series: BarSeries[], markY?: { value: number; label: string }): Record<string, unknown>[] {
  return series.map((s, i) => ({
    name: s.name, type: 'bar', data: s.data.map((v) => roundSig(v)), color: s.color ?? PALETTE[i % PALETTE.length],
    ...(s.stack ? { stack: s.stack } : {}), barMaxWidth: 48,
    ...(i === 0 && markY ? { markLine: markLineY(markY.value, markY.label) } : {}),
  }));
}

/** A bar series over categories. */
export interface BarSeries {
  name: string;
  data: Array<number | null>;
  color?: string;
  /** bars with the same stack id are stacked. */
  stack?: string;
}

/** An ECharts bar chart over categories (x) with a named value axis (y). */
export function barOption(xName: string, categories: string[], yName: string, series: BarSeries[], extra: { markY?: { value: number; label: string }; rotate?: number } = {}): Record<string, unknown> {
  return {
    animation: false,
    grid: { ...GRID, bottom: extra.rotate ? 70 : 52 },
    legend: { top: 0, type: 'scroll', show: series.length !== 1 }, // no series: set per layer by the page
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: fmt('sig4') },
    xAxis: { type: 'category', data: categories, name: xName, nameLocation: 'middle', nameGap: extra.rotate ? 52 : 30, axisLabel: { rotate: extra.rotate ?? 0, hideOverlap: true } },
    yAxis: valueAxis(yName, { scale: false }),
    series: barSeries(series, extra.markY),
  };
}

/** Upper end of the heatmap colour scale (load ÷ mean load); larger values take the top colour. */
export const HEAT_MAX = 2;

/**
 * A heatmap over categories with the load-ratio colour map. The cells are drawn by the page as one bitmap
 * (heatSeries): tens of thousands of ECharts rects take most of a second, a bitmap a few milliseconds. The
 * visualMap is the colour legend; the page shows its own per-cell tooltip.
 */
export function heatmapOption(xName: string, xLabels: string[], yName: string, yLabels: string[], valueName: string, height: number): Record<string, unknown> {
  // Category labels every n-th row so 12 px labels never overlap (ECharts' hideOverlap skips y category labels).
  const rowPx = (height - 68) / Math.max(1, yLabels.length);
  const every = Math.max(0, Math.ceil(13 / rowPx) - 1);
  return {
    animation: false,
    grid: { left: 70, right: 110, top: 16, bottom: 52 },
    xAxis: { type: 'category', data: xLabels, name: xName, nameLocation: 'middle', nameGap: 30, splitArea: { show: false }, axisLabel: { hideOverlap: true }, axisTick: { alignWithLabel: true } },
    yAxis: { type: 'category', data: yLabels, name: yName, nameLocation: 'middle', nameGap: 50, inverse: true, axisLabel: { interval: every }, axisTick: { interval: every } },
    visualMap: {
      type: 'continuous', min: 0, max: HEAT_MAX, calculable: false, orient: 'vertical', right: 4, top: 'middle', itemHeight: 160, precision: 1,
      text: [`≥${HEAT_MAX} ${valueName}`, '0 (idle)'], textGap: 6, inRange: { color: LOAD_RATIO_COLORS }, dimension: 0, hoverLink: false,
    },
    series: [],
  };
}

/** A heatmap series: cells [rows][cols] as base64 fixed-point, drawn by the page as one bitmap. */
export function heatSeries(name: string, cells: ArrayLike<number>[]): Record<string, unknown> {
  return { '@heatSeries': { name, b64: encodeCells(cells), rows: cells.length, cols: cells.length ? cells[0].length : 0 } };
}

/** Formats a number for a table cell: integers plain, others with `digits` significant digits; null → "–". */
export function cell(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}

/** A fraction as a percentage cell, e.g. 0.4213 → "42.1%". */
export function pctCell(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(100 * v).toFixed(digits)}%`;
}
