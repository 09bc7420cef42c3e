import { describe, expect, it } from "vitest";
import { backendInfo, tf } from "../src/backend/index";

describe("backend", () => {
  it("is initialised once, and is the one tfjs reports", () => {
    const info = backendInfo();
    expect(info).toBeDefined();
    expect(tf.getBackend()).toBe(info!.tfBackend);
  });

  it.runIf(process.env.MERGENET_REQUIRE_NATIVE === "1")("is native TensorFlow (CI sets MERGENET_REQUIRE_NATIVE=1)", () => {
    expect(backendInfo()!.name).toMatch(/^tensorflow/);
  });
});
