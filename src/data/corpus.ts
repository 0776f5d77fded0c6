/**
 * Training text: the `nlp-corpus` package (≈100k English sentences, offline) or a UTF-8 file, plus a
 * deterministic train/validation split. The text is one sentence per line, so '\n' is the sentence boundary.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

export type CorpusSource = 'nlp-corpus' | 'file';

export interface CorpusOptions {
  source: CorpusSource;
  /** Required for 'file'. */
  path?: string | null;
  /** Keep at most this many characters (UTF-16 code units), cut back to the last whole line. */
  maxChars?: number | null;
}

/** Largest file loadCorpus reads: far above any corpus a 2-core tfjs run can use, far below V8's string limit. */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

/** Returns the corpus text: nlp-corpus docs in index order joined by '\n', or a UTF-8 file; cut to maxChars. */
export function loadCorpus(opts: CorpusOptions): string {
  if (opts === null || typeof opts !== 'object') throw new Error(`loadCorpus: options must be an object, got ${String(opts)}`);
  const maxChars = opts.maxChars ?? null;
  if (maxChars !== null && (!Number.isInteger(maxChars) || maxChars < 1)) {
    throw new Error(`loadCorpus: maxChars must be a positive integer or null, got ${String(maxChars)}`);
  }
  switch (opts.source) {
    case 'nlp-corpus':
      return loadNlpCorpus(maxChars);
    case 'file':
      return loadFile(opts.path ?? null, maxChars);
    default:
      throw new Error(`loadCorpus: source must be 'nlp-corpus' or 'file', got ${JSON.stringify((opts as { source: unknown }).source)}`);
  }
}

/** The nlp-corpus package root: walk up from its resolved entry point to the package.json that names it. */
export function nlpCorpusDir(): string {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('nlp-corpus');
  } catch (e) {
    throw new Error(`loadCorpus: the 'nlp-corpus' package is not installed (run npm ci): ${(e as Error).message.split('\n')[0]}`);
  }
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'nlp-corpus') return dir;
  }
  throw new Error(`loadCorpus: no nlp-corpus package.json above ${entry}`);
}

/** Sorted indices N of builds/doc-N.json (numeric order, not the directory's lexicographic one). */
function docIndices(buildDir: string): number[] {
  if (!fs.existsSync(buildDir)) throw new Error(`loadCorpus: nlp-corpus has no builds folder at ${buildDir}`);
  const idx = fs.readdirSync(buildDir)
    .map((f) => /^doc-(\d+)\.json$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (idx.length === 0) throw new Error(`loadCorpus: no doc-N.json files in ${buildDir}`);
  return idx;
}

/** One line per sentence: line breaks inside a sentence (≈100 of 100k) become one space. */
function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ');
}

function loadNlpCorpus(maxChars: number | null): string {
  const buildDir = path.join(nlpCorpusDir(), 'builds');
  const lines: string[] = [];
  let len = -1; // length of lines.join('\n')
  for (const i of docIndices(buildDir)) {
    const file = path.join(buildDir, `doc-${i}.json`);
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    if (!Array.isArray(doc)) throw new Error(`loadCorpus: ${file} is not a JSON array of sentences`);
    for (const s of doc) {
      if (typeof s !== 'string') throw new Error(`loadCorpus: ${file} holds a non-string entry ${JSON.stringify(s)}`);
      const line = oneLine(s);
      if (maxChars !== null && len + 1 + line.length > maxChars) return finish(lines, maxChars, line);
      lines.push(line);
      len += 1 + line.length;
    }
  }
  return lines.join('\n');
}

/** Joined lines, or (when even the first line is longer than maxChars) that line cut to maxChars. */
function finish(lines: string[], maxChars: number, next: string): string {
  if (lines.length > 0) return lines.join('\n');
  return next.slice(0, safeCut(next, maxChars));
}

/** Index ≤ i that does not split a UTF-16 surrogate pair. */
function safeCut(text: string, i: number): number {
  if (i > 0 && i < text.length) {
    const c = text.charCodeAt(i - 1);
    if (c >= 0xd800 && c <= 0xdbff) return i - 1;
  }
  return i;
}

function loadFile(file: string | null, maxChars: number | null): string {
  if (typeof file !== 'string' || file.length === 0) throw new Error(`loadCorpus: source 'file' needs a path, got ${JSON.stringify(file)}`);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new Error(`loadCorpus: corpus file ${file} does not exist`);
  }
  if (!st.isFile()) throw new Error(`loadCorpus: corpus path ${file} is not a regular file`);
  if (st.size > MAX_FILE_BYTES) {
    throw new Error(`loadCorpus: corpus file ${file} is ${st.size} bytes, more than the ${MAX_FILE_BYTES}-byte cap`);
  }
  let text: string;
  try {
    // fatal: a binary or Latin-1 file is an error, not silently mangled text.
    text = new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(file));
  } catch {
    throw new Error(`loadCorpus: corpus file ${file} is not valid UTF-8`);
  }
  text = text.replace(/\r\n?/g, '\n'); // one line-break convention, so '\n' is the only boundary
  if (text.trim().length === 0) throw new Error(`loadCorpus: corpus file ${file} is empty (${st.size} bytes, no text)`);
  return maxChars === null ? text : truncate(text, maxChars);
}

/** text cut to ≤ maxChars, back to the last '\n' when there is one (the break itself dropped). */
function truncate(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const nl = text.lastIndexOf('\n', maxChars);
  return nl > 0 ? text.slice(0, nl) : text.slice(0, safeCut(text, maxChars));
}

/**
 * Deterministic split: val is the last ≈valFraction of the text, starting at the line boundary nearest to
 * len·(1 − valFraction); train + '\n' + val === text. A text with no usable line break is cut at that index.
 */
export function splitTrainVal(text: string, valFraction: number): { train: string; val: string } {
  if (typeof text !== 'string' || text.length < 2) throw new Error(`splitTrainVal: text needs ≥ 2 characters, got ${typeof text === 'string' ? text.length : typeof text}`);
  if (!Number.isFinite(valFraction) || valFraction <= 0 || valFraction >= 1) {
    throw new Error(`splitTrainVal: valFraction must be in (0, 1), got ${valFraction}`);
  }
  const target = Math.min(text.length - 1, Math.max(1, Math.round(text.length * (1 - valFraction))));
  // A break at i keeps both sides non-empty when 0 < i < len − 1.
  const after = text.indexOf('\n', target);
  const before = text.lastIndexOf('\n', target - 1);
  const okAfter = after > 0 && after < text.length - 1;
  const okBefore = before > 0 && before < text.length - 1;
  let cut = -1;
  if (okAfter && okBefore) cut = after - target <= target - before ? after : before;
  else if (okAfter) cut = after;
  else if (okBefore) cut = before;
  if (cut >= 0) return { train: text.slice(0, cut), val: text.slice(cut + 1) };
  const i = Math.max(1, safeCut(text, target));
  return { train: text.slice(0, i), val: text.slice(i) };
}
