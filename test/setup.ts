// Runs before every test file (vitest setupFiles): picks the backend once per worker so
// every test runs on the backend the README promises (native TensorFlow when available,
// MERGENET_BACKEND otherwise).
import { beforeAll } from "vitest";
import { initBackend } from "../src/backend/index";

// Experiments in tests train in the test's own process unless a test asks for workers (the
// pool and queue tests do; default-workers.test.ts tests the default itself): vitest already
// runs one test file per core, and a pool per file would start a TensorFlow process per core
// for each of them.
process.env.MERGENET_WORKERS ??= "1";

beforeAll(async () => {
  await initBackend();
});
