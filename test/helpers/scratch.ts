// Temporary folders a test file makes and removes after each test.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterEach } from "vitest";

/** `make()` gives a new empty folder under the system's temp folder; all are removed after each test. */
export function scratchDirs(prefix: string): { make(): string } {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    make() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
  };
}
