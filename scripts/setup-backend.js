#!/usr/bin/env node
// Makes the native TensorFlow backend of @tensorflow/tfjs-node usable, during `npm ci`.
// Plain JavaScript (no build step): it runs as the package's postinstall hook.
//
// Tries, in order, and reports each step in one line:
//   1. the native binding already loads                         -> done
//   2. tfjs-node's own install script (downloads libtensorflow;  -> works with internet)
//   3. offline: build the binding against a local TensorFlow C library, taken from
//      $LIBTENSORFLOW_DIR (a folder with lib/ and include/) or from the tensorflow-cpu
//      Python wheel that pip can fetch (a local index serves it here), cached outside
//      node_modules so a re-install is fast
//   4. none worked -> a warning; the library then runs on the wasm backend.
// It never fails the install: every step is best-effort, and the exit code is always 0.
//
// MERGENET_NATIVE=0 skips every native step (to test the wasm fallback).
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const TFJS_NODE_DIR = path.join(ROOT, "node_modules", "@tensorflow", "tfjs-node");
const WHEEL_SPEC = "tensorflow-cpu==2.21.0";
const CACHE_DIR = path.join(
  process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"),
  "mergenet-ts",
  "libtensorflow-cpu-2.21.0",
);
const BINDING_LIB_VERSION = "2.9.1"; // the libtensorflow version tfjs-node 4.22 is written for

function report(step, message) {
  process.stdout.write(`[mergenet setup-backend] ${step}: ${message}\n`);
}

function run(cmd, args, opts = {}) {
  const result = spawnSync(cmd, args, {
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 10 * 60 * 1000,
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;
  return { ok: result.status === 0, output, error: result.error };
}

/** The most telling line of a failed command's output: the last error line, else the last line. */
function lastLine(text) {
  const lines = text.trim().split("\n").filter((l) => l.trim() !== "");
  const errors = lines.filter((l) => /error|ENOTFOUND|EAI_AGAIN|failed/i.test(l));
  const pick = errors.length ? errors[errors.length - 1] : lines[lines.length - 1];
  return pick ? pick.trim().slice(0, 200) : "(no output)";
}

function bindingLoads() {
  const probe =
    "const tf=require('@tensorflow/tfjs-node');" +
    "if(tf.getBackend()!=='tensorflow')process.exit(3);" +
    "const s=tf.tensor([1,2,3]).square().sum().dataSync()[0];process.exit(s===14?0:4);";
  return run(process.execPath, ["-e", probe], { env: { TF_CPP_MIN_LOG_LEVEL: "3" }, timeoutMs: 60000 }).ok;
}

function tryOwnDownload() {
  const script = path.join(TFJS_NODE_DIR, "scripts", "install.js");
  const res = run(process.execPath, [script], { cwd: TFJS_NODE_DIR, timeoutMs: 5 * 60 * 1000 });
  return { ok: res.ok && bindingLoads(), detail: lastLine(res.output) };
}

/** Finds or extracts lib/ and include/ of a TensorFlow C library; returns its folder or throws. */
function localLibtensorflow() {
  if (process.env.LIBTENSORFLOW_DIR) {
    const dir = path.resolve(process.env.LIBTENSORFLOW_DIR);
    if (!fs.existsSync(path.join(dir, "lib")) || !fs.existsSync(path.join(dir, "include"))) {
      throw new Error(`LIBTENSORFLOW_DIR=${dir} must contain lib/ and include/`);
    }
    return dir;
  }
  const marker = path.join(CACHE_DIR, "COMPLETE");
  if (fs.existsSync(marker)) return CACHE_DIR;

  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "mergenet-tfwheel-"));
  try {
    const dl = run("python3", ["-m", "pip", "download", "--retries", "0", "--no-deps", "--only-binary=:all:", WHEEL_SPEC, "-d", scratch]);
    const wheel = fs.readdirSync(scratch).find((f) => f.endsWith(".whl"));
    if (!dl.ok || !wheel) throw new Error(`pip download ${WHEEL_SPEC} failed: ${lastLine(dl.output)}`);
    const partial = `${CACHE_DIR}.partial`;
    fs.rmSync(partial, { recursive: true, force: true });
    fs.mkdirSync(partial, { recursive: true });
    // Only the C library and the headers the binding includes (transitively) are taken.
    const bindingHeaders = bindingIncludes();
    const extract = run("python3", [path.join(__dirname, "extract_libtensorflow.py"), path.join(scratch, wheel), partial, ...bindingHeaders]);
    if (!extract.ok) throw new Error(`could not extract the wheel: ${lastLine(extract.output)}`);
    const lib = path.join(partial, "lib");
    // The binding links against libtensorflow.so[.2.9.1]; the cc library's SONAME needs the framework as .so.2.
    for (const name of ["libtensorflow.so", `libtensorflow.so.${BINDING_LIB_VERSION}`, "libtensorflow.so.2"]) {
      fs.symlinkSync("libtensorflow_cc.so.2", path.join(lib, name));
    }
    for (const name of ["libtensorflow_framework.so", `libtensorflow_framework.so.${BINDING_LIB_VERSION}`]) {
      fs.symlinkSync("libtensorflow_framework.so.2", path.join(lib, name));
    }
    fs.writeFileSync(path.join(partial, "COMPLETE"), `${WHEEL_SPEC}\n`);
    fs.rmSync(CACHE_DIR, { recursive: true, force: true });
    fs.renameSync(partial, CACHE_DIR);
    return CACHE_DIR;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** The TensorFlow headers that tfjs-node's C++ binding includes directly. */
function bindingIncludes() {
  const dir = path.join(TFJS_NODE_DIR, "binding");
  const found = new Set();
  for (const file of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, file), "utf8");
    for (const m of text.matchAll(/#include\s+"(tensorflow\/[^"]+)"/g)) found.add(m[1]);
  }
  return [...found];
}

function tryOfflineBuild() {
  const tfDir = localLibtensorflow();
  const deps = path.join(TFJS_NODE_DIR, "deps");
  fs.rmSync(deps, { recursive: true, force: true });
  fs.mkdirSync(path.join(deps, "lib"), { recursive: true });
  for (const name of fs.readdirSync(path.join(tfDir, "lib"))) {
    fs.symlinkSync(path.join(tfDir, "lib", name), path.join(deps, "lib", name));
  }
  fs.symlinkSync(path.join(tfDir, "include"), path.join(deps, "include"));
  const preGyp = path.join(ROOT, "node_modules", "@mapbox", "node-pre-gyp", "bin", "node-pre-gyp");
  const nodedir = fs.existsSync("/usr/include/node/node.h") ? "/usr" : undefined;
  const res = run(process.execPath, [preGyp, "install", "--build-from-source"], {
    cwd: TFJS_NODE_DIR,
    env: nodedir ? { npm_config_nodedir: nodedir } : {},
  });
  if (!res.ok) throw new Error(`node-pre-gyp build failed: ${lastLine(res.output)}`);
  if (!bindingLoads()) throw new Error("the binding built but does not load");
  return tfDir;
}

function main() {
  if (!fs.existsSync(TFJS_NODE_DIR)) {
    report("skip", "@tensorflow/tfjs-node is not installed; the wasm backend will be used");
    return;
  }
  if (process.env.MERGENET_NATIVE === "0") {
    report("skip", "MERGENET_NATIVE=0: native set-up skipped; the wasm backend will be used");
    return;
  }
  if (bindingLoads()) {
    report("1/4 native binding", "already loads: tensorflow backend ready");
    return;
  }
  report("1/4 native binding", "not loadable yet");
  if (process.env.MERGENET_SKIP_DOWNLOAD !== "1") {
    const own = tryOwnDownload();
    if (own.ok) {
      report("2/4 tfjs-node download", "ok: tensorflow backend ready");
      return;
    }
    report("2/4 tfjs-node download", `failed (${own.detail})`);
  } else {
    report("2/4 tfjs-node download", "skipped (MERGENET_SKIP_DOWNLOAD=1)");
  }
  try {
    const from = tryOfflineBuild();
    report("3/4 offline build", `ok against ${from}: tensorflow backend ready`);
    return;
  } catch (err) {
    report("3/4 offline build", `failed (${err.message})`);
  }
  report("4/4 fallback", "WARNING: no native TensorFlow; MergeNet will run on the slower wasm backend (see README, 'Backends')");
}

try {
  main();
} catch (err) {
  report("error", `unexpected failure, continuing without native TensorFlow: ${err.stack || err}`);
}
process.exit(0);
