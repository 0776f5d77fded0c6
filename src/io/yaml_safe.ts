/**
 * YAML for hand-typed configs, parsed defensively: YAML 1.2 core schema only (no custom or language tags,
 * unknown tags like `!!js/function` or `!!binary` are errors, not strings), string keys only, duplicate keys
 * rejected, `<<` merge keys off, one document per file, aliases capped (billion laughs fails fast), a size
 * cap, and every error as file:line:col.
 */
import * as fs from 'node:fs';
import { LineCounter, isScalar, parseAllDocuments, visit, type Document, type YAMLError } from 'yaml';

/** Largest config accepted, bytes. */
export const DEFAULT_MAX_YAML_BYTES = 1 << 20;
/** Alias dereferences allowed when building the value (yaml's own resource-exhaustion guard). */
export const MAX_ALIAS_COUNT = 100;

/** A config problem at file:line:col (line and col are 1-based; absent when the problem has no place). */
export class YamlError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly col: number | undefined,
    readonly problem: string,
  ) {
    super(`${file}${line === undefined ? '' : `:${line}:${col}`}: ${problem}`);
    this.name = 'YamlError';
  }
}

export interface YamlOptions {
  /** Largest accepted text, bytes of UTF-8 (default 1 MiB). */
  maxBytes?: number;
}

/** Parses one YAML document with the safe core schema; an empty document gives null. */
export function parseYamlSafe(text: string, file = '<yaml>', opts: YamlOptions = {}): unknown {
  if (typeof text !== 'string') throw new Error(`parseYamlSafe: text must be a string, got ${typeof text}`);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_YAML_BYTES;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new YamlError(file, undefined, undefined, `config is ${bytes} bytes, above the ${maxBytes}-byte limit`);

  const lc = new LineCounter();
  const docs = parseAllDocuments(text, {
    schema: 'core',
    customTags: [],
    resolveKnownTags: false, // !!binary, !!set, !!timestamp, !!omap stay unresolved → rejected below
    merge: false,
    uniqueKeys: false, // checked below in one pass: yaml's own check is quadratic (20k keys took 46 s)
    stringKeys: true,
    strict: true,
    prettyErrors: true,
    logLevel: 'silent', // problems are reported through doc.errors / doc.warnings, not the console
    lineCounter: lc,
  });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem !== undefined) throw fromYamlError(problem, doc, file);
    const dup = firstDuplicateKey(doc);
    if (dup !== null) {
      const pos = dup.offset === undefined ? undefined : lc.linePos(dup.offset);
      throw new YamlError(file, pos?.line, pos?.col, `duplicate key ${JSON.stringify(dup.key.slice(0, 80))} (each key may appear once per mapping)`);
    }
  }
  if (list.length === 0) return null;
  if (list.length > 1) {
    const { line, col } = lc.linePos(list[1].range[0]);
    throw new YamlError(file, line, col, `found ${list.length} YAML documents; a config is a single document (remove the '---' separator)`);
  }
  try {
    return list[0].toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const msg = (e as Error).message;
    if (/resource exhaustion/i.test(msg)) {
      throw new YamlError(file, undefined, undefined, `aliases expand too much (uses of an anchor × aliases inside it exceed ${MAX_ALIAS_COUNT}; "billion laughs"?)`);
    }
    if (/alias/i.test(msg)) throw new YamlError(file, undefined, undefined, msg);
    throw e;
  }
}

/** Reads and parses a YAML file, checking its size before reading it. */
export function readYamlFile(path: string, opts: YamlOptions = {}): unknown {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_YAML_BYTES;
  let raw: Buffer;
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0)); // a FIFO must not block the open
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new YamlError(path, undefined, undefined, 'not a regular file');
    if (st.size > maxBytes) throw new YamlError(path, undefined, undefined, `config is ${st.size} bytes, above the ${maxBytes}-byte limit`);
    // Read at most maxBytes + 1 so a file that grows after fstat is still caught.
    raw = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let n = 0;
    while (n < raw.length) {
      const got = fs.readSync(fd, raw, n, raw.length - n, n);
      if (got === 0) break;
      n += got;
    }
    if (n > maxBytes) throw new YamlError(path, undefined, undefined, `config is over the ${maxBytes}-byte limit`);
    raw = raw.subarray(0, n);
  } catch (e) {
    if (e instanceof YamlError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw e;
    throw new YamlError(path, undefined, undefined, `cannot read: ${code} (${(e as Error).message})`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw); // also drops a UTF-8 BOM
  } catch {
    throw new YamlError(path, undefined, undefined, 'config is not valid UTF-8');
  }
  return parseYamlSafe(text, path, { maxBytes });
}

/** The first key that appears twice in one mapping (a Set per mapping: linear in the number of keys). */
function firstDuplicateKey(doc: Document): { key: string; offset: number | undefined } | null {
  let found: { key: string; offset: number | undefined } | null = null;
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const k = String(pair.key.value);
        if (seen.has(k)) { found = { key: k, offset: pair.key.range?.[0] }; return visit.BREAK; }
        seen.add(k);
      }
      return undefined;
    },
  });
  return found;
}

/** yaml's error → YamlError: first line of its message, its position, and the key for duplicates. */
function fromYamlError(e: YAMLError, doc: Document, file: string): YamlError {
  let problem = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  if (e.code === 'DUPLICATE_KEY') {
    let key: string | undefined;
    visit(doc, {
      Pair(_, pair) {
        if (isScalar(pair.key) && pair.key.range?.[0] === e.pos[0]) key = String(pair.key.value);
      },
    });
    problem = `duplicate key${key === undefined ? '' : ` ${JSON.stringify(key.slice(0, 80))}`} (each key may appear once per mapping)`;
  } else if (e.code === 'TAG_RESOLVE_FAILED') {
    problem = `${problem.replace(/^Unresolved tag/, 'tag not allowed')} (only plain YAML 1.2 core values: maps, lists, strings, numbers, booleans, null)`;
  } else if (e.code === 'RESOURCE_EXHAUSTION') {
    problem = 'nesting too deep';
  }
  const pos = e.linePos?.[0];
  return new YamlError(file, pos?.line, pos?.col, problem);
}
