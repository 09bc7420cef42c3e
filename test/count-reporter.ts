// Prints the plain closing line CI reads ("N passed, N failed, N skipped") after vitest's own
// summary, and writes the same counts as JSON to $MERGENET_TEST_COUNTS when that is set.
import * as fs from "fs";
import type { Reporter, TestModule } from "vitest/node";

export default class CountReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
      if (mod.state() === "failed" && mod.children.size === 0) failed++; // a file that failed to load
    }
    failed += unhandledErrors.length;
    const line = `${passed} passed, ${failed} failed, ${skipped} skipped`;
    process.stdout.write(`\n${line}\n`);
    if (process.env.MERGENET_TEST_COUNTS) {
      fs.writeFileSync(process.env.MERGENET_TEST_COUNTS, JSON.stringify({ passed, failed, skipped }));
    }
  }
}
