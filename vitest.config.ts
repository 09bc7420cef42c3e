import { defineConfig } from "vitest/config";

// `forks` keeps the native TensorFlow addon in child processes (threads share one addon
// instance badly). Tests are numerical and sometimes train a small model: generous timeouts.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    testTimeout: 120_000,
    hookTimeout: 120_000,
    setupFiles: ["test/setup.ts"],
    reporters: ["default", "./test/count-reporter.ts"],
  },
});
