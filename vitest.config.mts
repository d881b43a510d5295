import { defineConfig } from 'vitest/config';

// Tests run against the built package in dist/, the same files users load; `npm test` builds first.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/stress/*.stress.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
