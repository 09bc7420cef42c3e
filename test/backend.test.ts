import { describe, expect, it } from "vitest";
import { backendInfo, initBackend, requestedThreads, tf } from "../src/backend/index";

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

describe("backend: TensorFlow thread setting (issue 16)", () => {
  it("takes the option, else TF_NUM_* variables, else MERGENET_THREADS, else TensorFlow's default", () => {
    expect(requestedThreads(undefined, {})).toEqual({ intra: "default", inter: "default" });
    expect(requestedThreads(undefined, { MERGENET_THREADS: "1" })).toEqual({ intra: 1, inter: 1 });
    expect(requestedThreads(undefined, { MERGENET_THREADS: "2,1" })).toEqual({ intra: 2, inter: 1 });
    expect(requestedThreads(undefined, { MERGENET_THREADS: "2", TF_NUM_INTRAOP_THREADS: "1" })).toEqual({ intra: 1, inter: 2 });
    expect(requestedThreads(3, { MERGENET_THREADS: "2", TF_NUM_INTRAOP_THREADS: "1" })).toEqual({ intra: 3, inter: 3 });
    expect(requestedThreads({ intra: 1 }, {})).toEqual({ intra: 1, inter: "default" });
  });

  it("rejects a setting that is not a thread count, naming where it came from", () => {
    expect(() => requestedThreads(undefined, { MERGENET_THREADS: "two" })).toThrow(/MERGENET_THREADS='two'/);
    expect(() => requestedThreads(undefined, { MERGENET_THREADS: "1,2,3" })).toThrow(/INTRA,INTER/);
    expect(() => requestedThreads(0, {})).toThrow(/threads.intra='0'/);
    expect(() => requestedThreads(undefined, { TF_NUM_INTEROP_THREADS: "-1" })).toThrow(/TF_NUM_INTEROP_THREADS/);
  });

  it("records the setting in force on a native backend, and refuses another once TensorFlow has loaded", async () => {
    const info = backendInfo()!;
    if (!info.name.startsWith("tensorflow")) return expect(info.threads).toBeUndefined();
    expect(info.threads).toEqual(requestedThreads());
    const other = info.threads!.intra === 1 ? 2 : 1;
    await expect(initBackend(undefined, { threads: other })).rejects.toThrow(/reads the setting once/);
    await expect(initBackend()).resolves.toBe(info);
  });
});
