// What a piece of code writes to stderr (the logger's warnings), kept from the test output.
import { vi } from "vitest";

/** Runs `fn` with stderr captured; returns what it wrote. */
export async function warningsOf(fn: () => Promise<unknown>): Promise<string> {
  const warnings: string[] = [];
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    warnings.push(String(chunk));
    return true;
  });
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return warnings.join("\n");
}
