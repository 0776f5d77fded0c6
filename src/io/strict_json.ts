/**
 * A strict JSON parser for headers of untrusted files. Unlike `JSON.parse` it rejects duplicate keys
 * (the safetensors spec forbids them; `JSON.parse` silently keeps the last), bounds nesting depth, and
 * builds objects without a prototype so a key named `__proto__` is just a key.
 */

/** A JSON syntax problem at a character offset of the text. */
export class StrictJsonError extends Error {
  constructor(
    readonly problem: string,
    readonly offset: number,
  ) {
    super(`${problem} at character ${offset}`);
    this.name = 'StrictJsonError';
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WS = /[ \t\n\r]*/y;

/** Parses RFC 8259 JSON; objects have a null prototype; duplicate keys and depth > maxDepth are errors. */
export function parseJsonStrict(text: string, maxDepth = 64): unknown {
  if (!Number.isInteger(maxDepth) || maxDepth < 1) throw new Error(`parseJsonStrict: maxDepth must be a positive integer, got ${maxDepth}`);
  let pos = 0;

  const skipWs = (): void => {
    WS.lastIndex = pos;
    WS.exec(text);
    pos = WS.lastIndex;
  };
  const fail = (problem: string, at = pos): never => {
    throw new StrictJsonError(problem, at);
  };
  const expectChar = (c: string): void => {
    if (text[pos] !== c) fail(`expected '${c}' but found ${describe(text, pos)}`);
    pos++;
  };

  const parseString = (): string => {
    const start = pos;
    pos++; // opening quote
    for (;;) {
      const c = text.charCodeAt(pos);
      if (Number.isNaN(c)) fail('unterminated string', start);
      if (c === 0x22) break;
      if (c === 0x5c) pos++; // skip the escaped character; JSON.parse below validates the escape
      pos++;
    }
    pos++; // closing quote
    try {
      return JSON.parse(text.slice(start, pos)) as string;
    } catch {
      return fail('invalid string (bad escape or raw control character)', start);
    }
  };

  const parseValue = (depth: number): unknown => {
    skipWs();
    const c = text[pos];
    if (c === '{' || c === '[') {
      if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth}`);
      return c === '{' ? parseObject(depth + 1) : parseArray(depth + 1);
    }
    if (c === '"') return parseString();
    if (text.startsWith('true', pos)) return (pos += 4), true;
    if (text.startsWith('false', pos)) return (pos += 5), false;
    if (text.startsWith('null', pos)) return (pos += 4), null;
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null || m[0].length === 0) return fail(`unexpected ${describe(text, pos)}`);
    pos += m[0].length;
    return Number(m[0]);
  };

  const parseObject = (depth: number): Record<string, unknown> => {
    const obj = Object.create(null) as Record<string, unknown>;
    pos++; // '{'
    skipWs();
    if (text[pos] === '}') return pos++, obj;
    for (;;) {
      skipWs();
      if (text[pos] !== '"') fail(`expected a key string but found ${describe(text, pos)}`);
      const keyAt = pos;
      const key = parseString();
      if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate key ${JSON.stringify(clip(key))}`, keyAt);
      skipWs();
      expectChar(':');
      obj[key] = parseValue(depth);
      skipWs();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      expectChar('}');
      return obj;
    }
  };

  const parseArray = (depth: number): unknown[] => {
    const arr: unknown[] = [];
    pos++; // '['
    skipWs();
    if (text[pos] === ']') return pos++, arr;
    for (;;) {
      arr.push(parseValue(depth));
      skipWs();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      expectChar(']');
      return arr;
    }
  };

  const value = parseValue(0);
  skipWs();
  if (pos !== text.length) fail(`unexpected ${describe(text, pos)} after the end of the JSON value`);
  return value;
}

/** Shortens attacker-sized strings before they go into a message. */
export function clip(s: string, max = 120): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${s.length} chars)`;
}

function describe(text: string, pos: number): string {
  return pos >= text.length ? 'end of text' : JSON.stringify(text[pos]);
}
