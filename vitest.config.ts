import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests start real processes, servers and network namespaces; two cores are shared.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
