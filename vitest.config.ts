import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // tfjs keeps a global backend per process: one forked process per file keeps files independent.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
