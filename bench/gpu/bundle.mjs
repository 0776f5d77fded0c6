// Bundles an entry point (default bench/run.ts) into one ES module for a machine that has Node but no
// node_modules: tfjs is inlined; Dawn's native module (webgpu) and playwright-core (only the report's
// browser benchmark loads it, on demand) stay external.
//   node bench/gpu/bundle.mjs [entry.ts] [out.mjs]
import { build } from 'esbuild';

/** Bundles `entry` into `outfile`; returns esbuild's result. */
export async function bundle(entry = 'bench/run.ts', outfile = '.gpu/bench.mjs') {
  return build({
    entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    external: ['webgpu', 'playwright-core'], logLevel: 'warning',
    // tfjs's CommonJS parts call require(): give the ES module bundle one
    banner: { js: "import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" },
  });
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  await bundle(process.argv[2], process.argv[3]);
}
