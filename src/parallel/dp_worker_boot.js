// Data-parallel worker entry: registers tsx so the TypeScript worker loads without a build step (as worker_boot.js does).
import { register } from 'tsx/esm/api';

register();
await import('./dp_worker.ts');
