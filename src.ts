/**
 * Lets a notebook cell write `import { ... } from "./src"`: the public API is src/index.ts, this
 * file only forwards to it.
 *
 * Why a file at the repository root: the notebook kernel (tslab 1.0.22) type-checks a cell with
 * TypeScript's node10 resolution, where "./src" means src.ts if it exists and else
 * src/index.ts; but it RUNS the cell with its own loader, which turns "./src" into
 * <kernel's directory>/src.js, its compiled copy of src.ts, and never tries src/index.js
 * (tslab's executor.js, requireFromSideOutputs: a path without an extension gets ".js"). Without
 * this file the cell compiles and then fails with "Cannot find module './src'". The kernel
 * starts in the repository root (jupyter/kernels/mergenet-ts/start-kernel.sh), so this is
 * where it looks. tslab reads no tsconfig and no package.json "exports", so no compiler option
 * or package field can change either resolution.
 *
 * Everything else resolves "./src" (or "../src") to this file too, before src/index.ts: tsc and
 * tsx (a file wins over a folder), vitest. Same exports either way. Deep imports such as
 * "./src/index" keep working; test/imports.test.ts runs "./src" in a real kernel.
 */
export * from "./src/index";
