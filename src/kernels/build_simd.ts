/**
 * Assembles wasm_simd.wat with wabt (the WebAssembly Binary Toolkit) into the generated module wasm_simd_bytes.ts,
 * which the runtime loads: the browser bundle then carries 1.3 KB of bytes, not an assembler. Build and test code
 * only (wabt is a devDependency); `npm run build:kernels` runs build_simd_main.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import wabt from 'wabt';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The WebAssembly text source of the SIMD kernels. */
export const SIMD_WAT = path.join(HERE, 'wasm_simd.wat');
/** The generated TypeScript module holding the assembled bytes. */
export const SIMD_BYTES_TS = path.join(HERE, 'wasm_simd_bytes.ts');

/** The binary of a WebAssembly text module (SIMD enabled, validated, no name section). */
export async function assembleWat(text: string, filename = 'wasm_simd.wat'): Promise<Uint8Array> {
  const tools = await wabt();
  // as UTF-8 bytes: given a string, wabt miscounts the length of one with non-ASCII characters (the comments' ·, √)
  const mod = tools.parseWat(filename, new TextEncoder().encode(text), { simd: true });
  try {
    mod.resolveNames();
    mod.validate(); // throws with wabt's message on a type error
    return mod.toBinary({ write_debug_names: false }).buffer.slice();
  } finally {
    mod.destroy();
  }
}

/** The text of wasm_simd_bytes.ts for these bytes: base64, wrapped at 100 characters. */
export function bytesModuleText(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,100}/g) ?? [''];
  return [
    '// generated from wasm_simd.wat by `npm run build:kernels`; do not edit',
    '',
    `/** The assembled SIMD kernels module (${bytes.length} bytes), base64. */`,
    'export const SIMD_WASM_BASE64 =',
    lines.map((l) => `  '${l}'`).join(' +\n') + ';',
    '',
  ].join('\n');
}

/** Assembles wasm_simd.wat and writes wasm_simd_bytes.ts; returns the module's size in bytes. */
export async function buildSimdKernels(): Promise<number> {
  const bytes = await assembleWat(fs.readFileSync(SIMD_WAT, 'utf8'));
  fs.writeFileSync(SIMD_BYTES_TS, bytesModuleText(bytes));
  return bytes.length;
}
