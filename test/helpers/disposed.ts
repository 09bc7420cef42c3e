// Kept apart from tiny.ts, which child processes outside vitest import (vitest cannot be required there).
import { afterEach } from "vitest";
import { tinySetup, type TinySetup } from "./tiny";

/**
 * A `tinySetup` whose models and data are disposed after each test of the calling file
 * (registers a vitest afterEach). Call once at the top of a test file.
 */
export function disposedAfterEach(): (opts?: Parameters<typeof tinySetup>[0]) => TinySetup {
  let made: TinySetup[] = [];
  afterEach(() => {
    made.forEach((s) => s.dispose());
    made = [];
  });
  return (opts) => {
    const s = tinySetup(opts);
    made.push(s);
    return s;
  };
}
