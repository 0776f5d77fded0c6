/**
 * Builds the playground: one self-contained HTML file (page script, training worker, tfjs with its wasm
 * binaries, ECharts and a slice of the nlp-corpus text all inlined) that works from file:// with no network.
 * The browser code imports the same src/ modules as the CLI; a Node builtin reaching the bundle is a build error
 * that names the importing file, so Node-only code stays at the edges.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinModules, createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as esbuild from 'esbuild';
import { writeFileAtomic } from '../io/atomic.ts';
import { playgroundCorpus } from './corpus.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (two folders above src/playground/). */
export const REPO_ROOT = path.resolve(HERE, '..', '..');
/** Where `npm run build:playground` writes the page. */
export const DEFAULT_OUT = path.join(REPO_ROOT, 'dist', 'playground.html');

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** True when an import specifier names a Node builtin (fs, node:fs, fs/promises, …). */
export function isNodeBuiltin(spec: string): boolean {
  return BUILTINS.has(spec) || BUILTINS.has(spec.split('/')[0]) || spec.startsWith('node:');
}

/**
 * esbuild plugin: any Node builtin imported from our own code is an error naming the importer. A package's
 * own Node fallbacks that its package.json "browser" field maps to false (tfjs-backend-wasm's fs, path,
 * worker_threads) are left to esbuild, which replaces them with empty modules.
 */
export function forbidNodeBuiltins(): esbuild.Plugin {
  return {
    name: 'forbid-node-builtins',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (!isNodeBuiltin(args.path)) return undefined;
        if (args.importer.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        const rel = path.relative(REPO_ROOT, args.importer) || args.importer;
        return { errors: [{ text: `Node builtin '${args.path}' imported by ${rel}: browser code may not use Node modules (keep files, threads and the terminal at the edges)` }] };
      });
    },
  };
}

/** Bundles one browser entry point to an IIFE string; throws with esbuild's messages on any error. */
export async function bundle(entry: string, opts: { plugins?: esbuild.Plugin[]; minify?: boolean; define?: Record<string, string> } = {}): Promise<{ code: string; inputs: string[] }> {
  const res = await (await loadEsbuild()).build({
    entryPoints: [entry], bundle: true, write: false, format: 'iife', platform: 'browser', target: 'es2022',
    minify: opts.minify ?? true, metafile: true, logLevel: 'silent', legalComments: 'none',
    plugins: [forbidNodeBuiltins(), ...(opts.plugins ?? [])],
    define: { 'process.env.NODE_ENV': '"production"', ...opts.define },
  }).catch((e: esbuild.BuildFailure) => {
    const msgs = (e.errors ?? []).map((m) => `${m.location ? `${m.location.file}:${m.location.line}: ` : ''}${m.text}`);
    throw new Error(`playground build failed:\n  ${msgs.length ? msgs.join('\n  ') : e.message}`);
  });
  // A builtin can also enter through a package that does not disable it for browsers: esbuild then marks it
  // external or fails; either way, nothing of Node may remain in the output.
  const inputs = Object.keys(res.metafile.inputs);
  const leaked = inputs.filter((i) => isNodeBuiltin(i.replace(/^\(disabled\):/, '')) && !i.startsWith('(disabled):'));
  if (leaked.length) throw new Error(`playground build failed: Node builtins in the bundle: ${leaked.join(', ')}`);
  return { code: res.outputFiles[0].text, inputs };
}

/** esbuild, loaded only when a page is built (a devDependency: `npm ci` in a clone installs it). */
async function loadEsbuild(): Promise<typeof esbuild> {
  try {
    return await import('esbuild');
  } catch (e) {
    throw new Error(`playground: building the page needs the esbuild package (a devDependency; run npm ci in the repository): ${(e as Error).message.split('\n')[0]}`);
  }
}

/** The tfjs wasm binaries a page without cross-origin isolation can use (no threads): plain and SIMD. */
function wasmBinaries(): { plain: string; simd: string } {
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  const b64 = (f: string) => fs.readFileSync(path.join(dir, f)).toString('base64');
  return { plain: b64('tfjs-backend-wasm.wasm'), simd: b64('tfjs-backend-wasm-simd.wasm') };
}

/** `</script` inside an inlined script would end the element early; in JS source `<\/script` means the same. */
function inlineSafe(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1');
}

export interface BuildResult {
  html: string;
  /** bytes of each part (for the build log). */
  sizes: Record<string, number>;
  /** source files bundled into the page and the worker. */
  inputs: string[];
}

/** Builds the page in memory. */
export async function buildPlayground(): Promise<BuildResult> {
  const corpus = playgroundCorpus();
  const wasm = wasmBinaries();
  // the worker's PLAYGROUND_ASSETS (declared in worker.ts) becomes this object literal
  const worker = await bundle(path.join(HERE, 'worker.ts'), {
    define: { PLAYGROUND_ASSETS: JSON.stringify({ CORPUS_TRAIN: corpus.train, CORPUS_VAL: corpus.val, WASM_PLAIN: wasm.plain, WASM_SIMD: wasm.simd }) },
  });
  const app = await bundle(path.join(HERE, 'app.ts'));
  const css = fs.readFileSync(path.join(HERE, 'style.css'), 'utf8');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard MoE playground</title><style>${css}</style></head>
<body><div id="app"></div>
<script type="text/plain" id="worker-src">${inlineSafe(worker.code)}</script>
<script>${inlineSafe(app.code)}</script>
</body></html>
`;
  return {
    html, inputs: [...new Set([...worker.inputs, ...app.inputs])],
    sizes: { html: Buffer.byteLength(html), worker: worker.code.length, app: app.code.length, corpus: corpus.train.length + corpus.val.length, wasm: wasm.plain.length + wasm.simd.length },
  };
}

/** Builds and writes the page atomically; returns its path and sizes. */
export async function writePlayground(out = DEFAULT_OUT): Promise<{ out: string; sizes: Record<string, number> }> {
  const r = await buildPlayground();
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  writeFileAtomic(out, r.html);
  return { out, sizes: r.sizes };
}
