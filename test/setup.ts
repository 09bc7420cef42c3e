// Runs before every test file (vitest setupFiles): picks the backend once per worker so
// every test runs on the backend the README promises (native TensorFlow when available,
// MERGENET_BACKEND otherwise).
import { beforeAll } from "vitest";
import { initBackend } from "../src/backend/index";

beforeAll(async () => {
  await initBackend();
});
