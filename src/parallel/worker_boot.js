// Worker-thread entry: registers tsx so the TypeScript worker loads without a build step (as bin/run-ts.js
// does for the main thread; `execArgv: ['--import', 'tsx']` does not reach worker threads on Node 20).
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
