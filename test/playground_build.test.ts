/**
 * The playground build refuses Node modules: a browser entry that reaches node:fs (here through a second file)
 * fails with a message naming the importing file; a pure entry bundles. The real page's check is in
 * playground_browser.test.ts (its bundle's inputs hold the CLI's step and no Node module).
 */
import { describe, expect, it } from 'vitest';
import { bundle, isNodeBuiltin } from '../src/playground/build.ts';

describe('playground build', () => {
  it('names Node builtins in every spelling', () => {
    for (const s of ['fs', 'node:fs', 'fs/promises', 'node:worker_threads', 'path', 'child_process', 'node:test']) expect(isNodeBuiltin(s), s).toBe(true);
    for (const s of ['@tensorflow/tfjs', 'yaml', './fs.ts', 'echarts/core', 'zod']) expect(isNodeBuiltin(s), s).toBe(false);
  });

  it('fails when a Node builtin enters the bundle, naming the file that imports it', async () => {
    await expect(bundle('test/fixtures/playground/uses_fs.ts')).rejects.toThrow(/playground build failed:\n.*Node builtin 'node:fs' imported by test\/fixtures\/playground\/reads_file\.ts/);
  });

  it('bundles browser code that uses the library', async () => {
    const r = await bundle('test/fixtures/playground/pure.ts', { minify: false });
    expect(r.inputs).toContain('src/metrics/balance.ts');
    expect(r.code).toContain('summarizeLoad');
  });
});
