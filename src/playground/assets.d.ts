/** The build's virtual module (build.ts): the corpus slice and tfjs's wasm binaries, inlined as strings. */
declare module 'playground:assets' {
  /** training text of the nlp-corpus slice. */
  export const CORPUS_TRAIN: string;
  /** validation text of the slice. */
  export const CORPUS_VAL: string;
  /** characters in the slice (data.max_chars of an exported config). */
  export const CORPUS_CHARS: string;
  /** tfjs-backend-wasm.wasm, base64. */
  export const WASM_PLAIN: string;
  /** tfjs-backend-wasm-simd.wasm, base64. */
  export const WASM_SIMD: string;
}
