/**
 * The GPU benchmark travels as one bundle of bench/run.ts (bench/gpu/bundle.mjs) to a machine without
 * node_modules. Bundled, every module shares the bundle's import.meta.url, so a benchmark module that ran
 * itself when "it is the entry point" would run inside every bundle; and playwright-core, bundled, dies on
 * `__dirname`. The bundle, run outside the repository with no benchmark selected, must run none and exit 0.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
// @ts-expect-error plain ES module without types
import { bundle } from '../bench/gpu/bundle.mjs';

it('bench/run.ts bundled runs no benchmark module on its own and loads no playwright-core', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-bundle-'));
  try {
    const file = path.join(dir, 'bench.mjs');
    await bundle('bench/run.ts', file);
    const out = path.join(dir, 'results.json');
    const r = spawnSync(process.execPath, [file, '--backend', 'cpu', '--only', 'none', '--out', out], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|__dirname|bench \w+ on/);
    expect(r.stdout).toBe(''); // a benchmark module run on its own prints its JSON
    expect(r.status).toBe(0);
    const written = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(Object.keys(written)).toEqual(['cpu']);
    expect(Object.keys(written.cpu).sort()).toEqual(['date', 'machine']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
