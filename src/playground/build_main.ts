/** `npm run build:playground [-- OUT]`: writes the self-contained playground page (an entry point of its own, so that
 * bundling the build module elsewhere never runs it). */
import { DEFAULT_OUT, writePlayground } from './build.ts';

const { out, sizes } = await writePlayground(process.argv[2] ?? DEFAULT_OUT);
const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
console.log(`wrote ${out} (${mb(sizes.html)}: worker ${mb(sizes.worker)} incl. corpus ${mb(sizes.corpus)} and wasm ${mb(sizes.wasm)}, page ${mb(sizes.app)})`);
