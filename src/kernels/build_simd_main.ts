/** `npm run build:kernels`: assembles src/kernels/wasm_simd.wat into src/kernels/wasm_simd_bytes.ts. */
import { buildSimdKernels, SIMD_BYTES_TS } from './build_simd.ts';

console.log(`wrote ${SIMD_BYTES_TS} (${await buildSimdKernels()} bytes of wasm)`);
