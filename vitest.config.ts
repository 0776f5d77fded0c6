import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import SlowestFirst from './test/slowest_first.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // tfjs keeps a global backend per process: one forked process per file keeps files independent.
    pool: 'forks',
    // every core (vitest's default leaves one idle, which on a 2-core machine runs the files one at a time)
    maxWorkers: Math.max(1, availableParallelism()),
    sequence: { sequencer: SlowestFirst },
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
