/**
 * The layout's rules, checked: no import cycle anywhere in src/ (type imports count: a cycle of types is still
 * two modules that cannot be read apart), and the training step's runtime import closure loads no Node module
 * (the browser and the WebGPU path import it).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'src');
const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Runtime import specifiers of a TypeScript source (`import type` and `export type` left out). */
export function runtimeImports(text: string): string[] {
  const specs: string[] = [];
  const stat = /^\s*(import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
  const dyn = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(stat)) specs.push(m[2]);
  for (const m of text.matchAll(dyn)) specs.push(m[1]);
  return specs;
}

/** Node modules a file loads at runtime: builtin imports, `require`, and the `process` global. */
function nodeUses(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  const uses = runtimeImports(text).filter((s) => BUILTINS.has(s));
  if (/\brequire\(/.test(text)) uses.push('require');
  if (/\bprocess\./.test(text)) uses.push('process');
  return uses;
}

describe('layout', () => {
  it('has no import cycle in src/', async () => {
    const res = await madge(SRC, { fileExtensions: ['ts'] });
    expect(Object.keys(res.obj()).length).toBeGreaterThan(100); // it did read the tree
    expect(res.circular()).toEqual([]);
    expect(res.warnings().skipped).toEqual([]); // every relative import resolves (a side-effect import too)
  });

  it('reports a cycle when there is one (the check can fail)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-cycle-'));
    try {
      fs.writeFileSync(path.join(dir, 'a.ts'), "import { b } from './b.ts';\nexport const a = () => b;\n");
      fs.writeFileSync(path.join(dir, 'b.ts'), "import type { a } from './a.ts';\nexport const b = 1 as unknown as typeof a;\n");
      const res = await madge(dir, { fileExtensions: ['ts'] });
      expect(res.circular()).toEqual([['a.ts', 'b.ts']]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the training step loads no Node module (browser and WebGPU import it)', async () => {
    const res = await madge(path.join(SRC, 'train', 'step.ts'), {
      fileExtensions: ['ts'], baseDir: SRC, detectiveOptions: { ts: { skipTypeImports: true }, es6: { skipTypeImports: true } },
    });
    const files = Object.keys(res.obj());
    expect(files).toContain('train/step.ts');
    expect(files).toContain('moe/layer.ts'); // the closure was followed
    const offenders = files.map((f) => [f, nodeUses(path.join(SRC, f))] as const).filter(([, u]) => u.length > 0);
    expect(offenders).toEqual([]);
    // and the scan itself sees a Node import where there is one
    expect(nodeUses(path.join(SRC, 'train', 'run.ts'))).toContain('node:fs');
  });

  it('reads runtime imports and skips type-only ones', () => {
    expect(runtimeImports("import * as fs from 'node:fs';\nimport type { X } from 'node:path';\nimport { a, type B } from './a.ts';\nexport type { C } from './c.ts';\nexport { d } from './d.ts';\nimport './side.ts';\nconst m = await import('node:worker_threads');"))
      .toEqual(['node:fs', './a.ts', './d.ts', './side.ts', 'node:worker_threads']);
  });
});
