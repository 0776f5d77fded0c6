/** Safe YAML: core schema only, duplicate keys, tags, multiple documents, aliases, size caps, fuzz. */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../src/rng.ts';
import { MAX_ALIAS_COUNT, YamlError, parseYamlSafe, readYamlFile } from '../src/io/yaml_safe.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'yaml-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const CONFIG = `# tiny MoE
model_type: moe_llama
layers: 2
dim: 64
expert_num: 8
top_k: 2
capacity_factor: 1.25
router:
  type: softmax
  jitter: 0.0
aux_loss: {type: switch, weight: 0.01}
use_load_balance: true
lr: 3.0e-4
schedule: cosine
data:
  name: "nlp-corpus"
  split: [0.9, 0.1]
seed: 42
note: null
`;

function yamlError(f: () => unknown): YamlError {
  try {
    f();
  } catch (e) {
    if (e instanceof YamlError) return e;
    throw new Error(`expected a YamlError, got ${String(e)}`);
  }
  throw new Error('expected a YamlError, but nothing was thrown');
}

describe('parseYamlSafe', () => {
  it('parses a config with YAML 1.2 core types', () => {
    expect(parseYamlSafe(CONFIG, 'cfg.yaml')).toEqual({
      model_type: 'moe_llama', layers: 2, dim: 64, expert_num: 8, top_k: 2, capacity_factor: 1.25,
      router: { type: 'softmax', jitter: 0 }, aux_loss: { type: 'switch', weight: 0.01 }, use_load_balance: true,
      lr: 3e-4, schedule: 'cosine', data: { name: 'nlp-corpus', split: [0.9, 0.1] }, seed: 42, note: null,
    });
  });

  it('uses YAML 1.2 core, not 1.1: yes/on/0o17/dates/<< are what 1.2 says', () => {
    expect(parseYamlSafe('a: yes\nb: on\nc: 0o17\nd: 017\ne: 2001-12-14\nf: 1_000\n<<: {x: 1}\n')).toEqual({
      a: 'yes', b: 'on', c: 15, d: 17, e: '2001-12-14', f: '1_000', '<<': { x: 1 },
    });
    // A %YAML 1.1 directive does not switch the schema back to 1.1.
    expect(parseYamlSafe('%YAML 1.1\n---\na: yes\n')).toEqual({ a: 'yes' });
  });

  it('an empty document is null', () => {
    expect(parseYamlSafe('')).toBeNull();
    expect(parseYamlSafe('# nothing\n')).toBeNull();
  });

  const bad: [string, string, RegExp, number | undefined, number | undefined][] = [
    ['duplicate top-level key', 'top_k: 1\ndim: 8\ntop_k: 2\n', /duplicate key "top_k"/, 3, 1],
    ['duplicate nested key', 'router:\n  type: a\n  jitter: 0\n  type: b\n', /duplicate key "type"/, 4, 3],
    ['duplicate quoted key', '"a b": 1\n\'a b\': 2\n', /duplicate key "a b"/, 2, 1],
    ['duplicate key in flow map', 'x: {a: 1, a: 2}\n', /duplicate key "a"/, 1, 11],
    ['language tag', 'x: !!js/function "function () { return 1 }"\n', /tag not allowed: tag:yaml.org,2002:js\/function/, 1, 4],
    ['python tag', 'x: !!python/object/apply:os.system ["ls"]\n', /tag not allowed: tag:yaml.org,2002:python/, 1, 4],
    ['local tag', 'x: !secret 1\n', /tag not allowed: !secret/, 1, 4],
    ['1.1 binary tag', 'x: !!binary aGVsbG8=\n', /tag not allowed: tag:yaml.org,2002:binary/, 1, 4],
    ['1.1 set tag', 'x: !!set {a, b}\n', /tag not allowed: tag:yaml.org,2002:set/, 1, 4],
    ['two documents', 'a: 1\n---\nb: 2\n', /found 2 YAML documents/, 2, 1],
    ['non-string key', '? [a, b]\n: 1\n', /keys must be strings/, 1, 3],
    ['unresolved alias', 'a: *nowhere\n', /Unresolved alias.*nowhere/, undefined, undefined],
    ['tab indentation', 'a:\n\tb: 1\n', /Tabs are not allowed/, 2, 1],
    ['unclosed flow', 'a: [1, 2\n', /Flow sequence|must be sufficiently indented|end with a \]/, 2, 1],
    ['bad indentation', 'a:\n  b: 1\n c: 2\n', /./, 3, undefined],
  ];
  for (const [what, text, message, line, col] of bad) {
    it(`rejects ${what}`, () => {
      const e = yamlError(() => parseYamlSafe(text, 'cfg.yaml'));
      expect(e.message).toMatch(message);
      expect(e.file).toBe('cfg.yaml');
      expect(e.line).toBe(line);
      if (col !== undefined) expect(e.col).toBe(col);
      if (line !== undefined) expect(e.message.startsWith(`cfg.yaml:${line}:${e.col}: `)).toBe(true);
    });
  }

  // Work bounds, not wall-clock: the cap counts alias dereferences, and a rejected bomb allocates next to nothing.
  // A parser without the cap would expand 9^10 nodes here; the test timeout is what catches that hang.
  it('billion laughs is rejected after a bounded amount of work', () => {
    let doc = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    const names = 'abcdefghij';
    for (let i = 1; i < names.length; i++) doc += `${names[i]}: &${names[i]} [${Array(9).fill(`*${names[i - 1]}`).join(',')}]\n`;
    const heap = process.memoryUsage().heapUsed;
    const e = yamlError(() => parseYamlSafe(doc, 'lol.yaml'));
    expect(process.memoryUsage().heapUsed - heap).toBeLessThan(64 << 20); // 9^10 strings would be gigabytes
    expect(e.message).toMatch(/^lol\.yaml: aliases expand too much/);
  }, 10_000);

  it(`the cap counts dereferences: ${MAX_ALIAS_COUNT - 1} aliases of a scalar parse, the ${MAX_ALIAS_COUNT}th is refused`, () => {
    const doc = (n: number) => `a: &a lol\nb: [${Array(n).fill('*a').join(', ')}]\n`;
    expect((parseYamlSafe(doc(MAX_ALIAS_COUNT - 1)) as { b: string[] }).b).toEqual(Array(MAX_ALIAS_COUNT - 1).fill('lol'));
    expect(yamlError(() => parseYamlSafe(doc(MAX_ALIAS_COUNT), 'n.yaml')).message).toMatch(/^n\.yaml: aliases expand too much/);
  });

  it('a few aliases are fine', () => {
    expect(parseYamlSafe('base: &b {lr: 0.1}\nx: *b\ny: *b\n')).toEqual({ base: { lr: 0.1 }, x: { lr: 0.1 }, y: { lr: 0.1 } });
  });

  it('deep nesting is an error, not a stack overflow', () => {
    const e = yamlError(() => parseYamlSafe(`a: ${'['.repeat(20000)}${']'.repeat(20000)}\n`, 'deep.yaml'));
    expect(e.message).toMatch(/nesting too deep/);
  });

  it('__proto__ is an ordinary key and pollutes nothing', () => {
    const v = parseYamlSafe('__proto__: {polluted: 1}\n') as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('text above the size cap is rejected before parsing', () => {
    expect(yamlError(() => parseYamlSafe('a: 1\n'.repeat(100), 'big.yaml', { maxBytes: 100 })).message).toBe('big.yaml: config is 500 bytes, above the 100-byte limit');
  });
});

describe('readYamlFile', () => {
  it('reads a file (BOM allowed) and reports errors with the path', () => {
    const f = path.join(tmp, 'c.yaml');
    fs.writeFileSync(f, `\uFEFF${CONFIG}`);
    expect((readYamlFile(f) as { top_k: number }).top_k).toBe(2);
    fs.writeFileSync(f, 'a: 1\na: 2\n');
    expect(yamlError(() => readYamlFile(f)).message).toBe(`${f}:2:1: duplicate key "a" (each key may appear once per mapping)`);
  });
  it('checks size before reading, and UTF-8', () => {
    const f = path.join(tmp, 'big.yaml');
    fs.writeFileSync(f, Buffer.alloc(2 << 20, 0x20));
    expect(yamlError(() => readYamlFile(f)).message).toBe(`${f}: config is 2097152 bytes, above the 1048576-byte limit`);
    fs.writeFileSync(f, Buffer.from([0x61, 0x3a, 0x20, 0xff, 0x0a]));
    expect(yamlError(() => readYamlFile(f)).message).toBe(`${f}: config is not valid UTF-8`);
    expect(yamlError(() => readYamlFile(path.join(tmp, 'missing.yaml'))).message).toMatch(/missing\.yaml: cannot read: ENOENT/);
    expect(yamlError(() => readYamlFile(tmp)).message).toMatch(/not a regular file/);
  });
});

describe('YAML fuzz', () => {
  it('mutated configs parse or fail with a YamlError at a place, never crash or hang', () => {
    const rng = new Rng(7);
    const pieces = ['&a ', '*a', '!!str ', '!!js/undefined ', '!x ', '---\n', '? ', ': ', '- ', '[', ']', '{', '}', '"', "'", '#', '\t', '\n', '|\n', '>-\n', '%YAML 1.1\n', '<<: *a\n', '\\', '\u0000', '\uFEFF', 'top_k: 3\n'];
    const lines = CONFIG.split('\n');
    let parsed = 0;
    let maxRatio = 0;
    for (let cases = 0; cases < 1500; cases++) {
      let text = CONFIG;
      for (let k = 1 + rng.int(3); k > 0; k--) {
        const at = rng.int(text.length + 1);
        const op = rng.int(5);
        if (op === 0) text = text.slice(0, at) + pieces[rng.int(pieces.length)] + text.slice(at);
        else if (op === 1) text = text.slice(0, at) + text.slice(at + 1 + rng.int(4));
        else if (op === 2) text = text.slice(0, at);
        else if (op === 3) text += `${lines[rng.int(lines.length)]}\n`; // often a duplicate key
        else text = text.slice(0, at) + String.fromCharCode(rng.int(128)) + text.slice(at + 1);
      }
      let value: unknown;
      try {
        value = parseYamlSafe(text, 'fuzz.yaml');
      } catch (e) {
        if (!(e instanceof YamlError)) throw new Error(`case ${cases}: ${String(e)} is not a YamlError; input: ${JSON.stringify(text)}`);
        expect(e.message.startsWith('fuzz.yaml')).toBe(true);
        continue;
      }
      parsed++;
      // Work bound on what was built: with at most MAX_ALIAS_COUNT dereferences the value is at most that many
      // copies of the text (JSON of a parsed value is never much longer than its YAML).
      const ratio = (JSON.stringify(value) ?? '').length / Math.max(1, text.length);
      if (ratio > MAX_ALIAS_COUNT + 1) throw new Error(`case ${cases}: the value is ${ratio.toFixed(1)}× the text; input: ${JSON.stringify(text)}`);
      maxRatio = Math.max(maxRatio, ratio);
    }
    expect(parsed).toBeGreaterThan(1500 * 0.05);
    expect(1500 - parsed).toBeGreaterThan(1500 * 0.2);
    console.log(`yaml fuzz: 1500 cases, ${parsed} parsed, largest value/text ratio ${maxRatio.toFixed(2)}`);
  });
});
