import { availableParallelism } from "os";
import { defineConfig } from "vitest/config";

// `forks` keeps the native TensorFlow addon in child processes (threads share one addon
// instance badly). Tests are numerical and sometimes train a small model: generous timeouts.
// One fork per core (vitest's default leaves one core free, i.e. runs the files one at a time on
// a 2-core machine): many files wait on child processes, kernels or Redis, so two forks on two
// cores took 183 s where one took 260 s for ten of the slowest files (machine loaded, 2026-12-03).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { maxForks: availableParallelism(), minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    setupFiles: ["test/setup.ts"],
    reporters: ["default", "./test/count-reporter.ts"],
  },
});
