/**
 * Reads expert-load statistics from a file (or a Megatron trace directory) into a [layers][experts] matrix.
 * JSONL and CSV are streamed line by line (readline), so multi-GB traces never sit in memory as text;
 * a single JSON document (matrix, SGLang, vLLM state) must be parsed whole.
 * Every count is checked (finite, ≥ 0); ragged rows, empty and truncated files are errors naming file and line.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, stat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { readMegatronTpe, tpeFiles, type MegatronGrid } from './load_megatron_tpe.ts';
import {
  checkCount, dialectOf, loadFromJsonDocument, megatronAccumulator, metricsAccumulator, vllmAccumulator,
  type LoadData, type RecordAccumulator,
} from './load_engines.ts';
import { MAX_EXPERTS, MAX_JSON_BYTES, MAX_LAYERS, MAX_SLOTS, checkSize } from '../limits.ts';
import { requireRegularFile } from '../io/regular_file.ts';

export type { LoadData, LoadFormatName, LoadSeries } from './load_engines.ts';

/** Options of readLoadFile. */
export interface ReadLoadOptions {
  /** Number of logical experts, when the file cannot say (Megatron traces, vLLM p2l maps). */
  numExperts?: number;
  /** Megatron tokens_per_expert folders: the parallel split that maps rank files to global experts. */
  grid?: MegatronGrid;
}

/** Lines of a text file, streamed; yields [lineNumber, text]. */
async function* lines(path: string): AsyncGenerator<[number, string]> {
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) yield [++n, line];
}

/** First bytes of a file (to sniff its kind). */
async function head(path: string, n = 512): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The first non-blank line of a file, read in chunks (a JSONL line can be megabytes long). */
async function firstLine(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const buf = Buffer.alloc(1 << 16);
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      chunks.push(buf.subarray(0, bytesRead));
      const text = Buffer.concat(chunks).toString('utf8').replace(/^\s+/, '');
      const nl = text.indexOf('\n');
      if (nl >= 0) return text.slice(0, nl);
    }
    return Buffer.concat(chunks).toString('utf8').trim();
  } finally {
    await fh.close();
  }
}

/** A whole JSON document's text, its size checked first (V8 cannot hold a string of over ~512 MiB). */
async function readWhole(path: string): Promise<string> {
  const { size } = await stat(path);
  if (size > MAX_JSON_BYTES) throw new Error(`${path} is ${size} bytes, above the ${MAX_JSON_BYTES}-byte bound for a whole-file JSON document (write JSONL instead)`);
  return readFile(path, 'utf8');
}

/** JSON.parse with an error naming the place and hinting at truncation or NaN. */
function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const nan = /\b(NaN|-?Infinity)\b/.exec(text);
    if (nan) throw new Error(`${where}: ${nan[1]} is not a count (JSON has no NaN/Infinity)`);
    throw new Error(`${where}: invalid JSON (truncated?): ${(e as Error).message}`);
  }
}

/** Streams a JSONL file through the accumulator of its dialect (metrics, vLLM stats, Megatron trace). */
async function readJsonl(paths: string[], opts: ReadLoadOptions): Promise<LoadData> {
  let acc: RecordAccumulator | null = null;
  let skipped = 0;
  for (const path of paths) {
    for await (const [n, text] of lines(path)) {
      if (text.trim() === '') continue;
      const where = `${path}:${n}`;
      const rec = parseJson(text, where);
      if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw new Error(`${where}: expected one JSON object per line`);
      const dialect = dialectOf(rec as Record<string, unknown>);
      if (!dialect) { skipped++; continue; }
      acc ??= dialect === 'metrics' ? metricsAccumulator() : dialect === 'vllm' ? vllmAccumulator(opts.numExperts) : megatronAccumulator(opts.numExperts);
      const want = acc.format === 'metrics' ? 'metrics' : acc.format === 'vllm' ? 'vllm' : 'megatron';
      if (dialect !== want) throw new Error(`${where}: a ${dialect} record in a ${want} file`);
      acc.add(rec as Record<string, unknown>, where);
    }
  }
  const source = paths.length === 1 ? paths[0] : `${paths.length} files`;
  if (!acc) throw new Error(`${source}: no line carries expert loads (expert_load, record_type or top_indices)`);
  const out = acc.finish(source);
  if (skipped) out.notes.push(`skipped ${skipped} lines without expert loads`);
  return out;
}

/** Splits a CSV/TSV line on the separator sniffed from the first line. */
function sniffSeparator(line: string): RegExp {
  if (line.includes('\t')) return /\t/;
  if (line.includes(';')) return /;/;
  if (line.includes(',')) return /,/;
  return /\s+/;
}

/** Streams a CSV matrix: rows = layers, columns = experts; optional header, optional leading "layer" column. */
async function readCsv(path: string): Promise<LoadData> {
  let sep: RegExp | null = null;
  let width = -1;
  let layerCol = false;
  const weight: number[][] = [];
  const layerIds: number[] = [];
  const notes: string[] = [];
  for await (const [n, raw] of lines(path)) {
    const text = raw.trim();
    if (text === '' || text.startsWith('#')) continue;
    sep ??= sniffSeparator(text);
    const cells = text.split(sep).map((c) => c.trim());
    if (width < 0 && cells.some((c) => c === '' || Number.isNaN(Number(c))) && !cells.some((c) => /^(nan|-?inf(inity)?)$/i.test(c))) {
      layerCol = /^layer/i.test(cells[0]);
      width = cells.length - (layerCol ? 1 : 0);
      notes.push(`header: ${cells.slice(0, 4).join(', ')}${cells.length > 4 ? ', …' : ''}`);
      continue;
    }
    const vals = cells.map((c, j) => {
      if (c === '' || Number.isNaN(Number(c)) || !Number.isFinite(Number(c))) {
        throw new Error(`${path}:${n}: ${layerCol && j === 0 ? 'layer' : `cell ${j + 1}`} = "${c}" is not a finite ${layerCol && j === 0 ? 'layer id' : 'count'}`);
      }
      return Number(c);
    });
    const row = layerCol ? vals.slice(1) : vals;
    if (width < 0) width = row.length;
    if (row.length !== width) throw new Error(`${path}:${n}: ${row.length} counts, expected ${width} (ragged rows)`);
    if (width > MAX_SLOTS) throw new Error(`${path}:${n}: ${width} columns (experts), above the bound ${MAX_SLOTS}`);
    if (weight.length >= MAX_LAYERS) throw new Error(`${path}:${n}: more than ${MAX_LAYERS} rows (layers), the bound`);
    if (layerCol && (!Number.isInteger(vals[0]) || vals[0] < 0 || vals[0] >= MAX_LAYERS)) throw new Error(`${path}:${n}: layer = ${cells[0]}; allowed an integer in 0..${MAX_LAYERS - 1}`);
    weight.push(row.map((v, j) => checkCount(v, `${path}:${n} column ${j + 1}`)));
    layerIds.push(layerCol ? vals[0] : weight.length - 1);
  }
  if (weight.length === 0) throw new Error(`${path}: no rows of counts`);
  return { weight, layerIds, format: 'csv', notes };
}

/** Files of a Megatron trace directory: router_trace_rank{r}.jsonl, in rank order. */
async function traceFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((f) => /^router_trace_rank\d+\.jsonl$/.test(f));
  if (names.length === 0) throw new Error(`${dir}: directory without router_trace_rank*.jsonl (router traces) or tokens_per_expert/rank*.jsonl files`);
  const rank = (f: string): number => Number(/\d+/.exec(f)![0]);
  const files = names.sort((a, b) => rank(a) - rank(b)).map((f) => join(dir, f));
  for (const f of files) requireRegularFile(f, 'router trace');
  return files;
}

/**
 * Reads expert loads: JSON matrix [L][E] or [S][L][E], CSV/TSV, Switchyard metrics.jsonl, vLLM stats JSONL or
 * EplbModelState JSON, SGLang logical_count JSON, Megatron-Core router traces (file or directory of ranks), Megatron-LM's
 * tokens_per_expert folder (rank{R}.jsonl, merged over expert-parallel ranks).
 */
export async function readLoadFile(path: string, opts: ReadLoadOptions = {}): Promise<LoadData> {
  if (opts.numExperts !== undefined) checkSize('experts', opts.numExperts, MAX_EXPERTS);
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new Error(`load file not found: ${path}`);
  }
  if (info.isDirectory()) {
    if (await tpeFiles(path)) return readMegatronTpe(path, opts.grid);
    return readJsonl(await traceFiles(path), opts);
  }
  requireRegularFile(path, 'load file');
  if (info.size === 0) throw new Error(`${path} is empty`);
  const start = await head(path);
  if ((start[0] === 0x50 && start[1] === 0x4b) || /\.(pt|pth|pkl)$/i.test(path)) {
    throw new Error(`${path} is a torch/pickle file; convert it to JSON first, e.g. python -c "import torch,json; d=torch.load('${path}'); json.dump({'logical_count': d['logical_count'].tolist()}, open('load.json','w'))"`);
  }
  const text = start.toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (text === '') throw new Error(`${path} is empty`);
  if (/\.(csv|tsv)$/i.test(path) || /^[-+.0-9#"a-zA-Z]/.test(text)) return readCsv(path);
  if (text.startsWith('[')) return loadFromJsonDocument(parseJson(await readWhole(path), path), path, opts.numExperts);
  // '{': *.jsonl, or a file whose first line is a whole object, is JSONL; *.json is one document (or JSONL if
  // only its first line parses).
  const firstParses = async (): Promise<boolean> => {
    try { JSON.parse(await firstLine(path)); return true; } catch { return false; }
  };
  if (/\.jsonl$/i.test(path)) return readJsonl([path], opts);
  if (/\.json$/i.test(path)) {
    const whole = await readWhole(path);
    try {
      return loadFromJsonDocument(JSON.parse(whole), path, opts.numExperts);
    } catch (e) {
      if (e instanceof SyntaxError && (await firstParses())) return readJsonl([path], opts);
      if (e instanceof SyntaxError) parseJson(whole, path); // rethrows with the file named
      throw e;
    }
  }
  if (await firstParses()) return readJsonl([path], opts);
  return loadFromJsonDocument(parseJson(await readWhole(path), path), path, opts.numExperts);
}
