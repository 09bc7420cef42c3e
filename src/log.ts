/**
 * The one place library code reports to the terminal. Messages go to stderr so that a
 * command's stdout (JSON from `npm run bench -- --json`, say) stays machine-readable.
 * MERGENET_LOG=silent hides info messages; warnings are always shown.
 */
type Level = "info" | "warn";

const silent = (): boolean => process.env.MERGENET_LOG === "silent";

export const logger = {
  info(message: string): void {
    if (!silent()) process.stderr.write(`[mergenet] ${message}\n`);
  },
  warn(message: string): void {
    process.stderr.write(`[mergenet] warning: ${message}\n`);
  },
  log(level: Level, message: string): void {
    this[level](message);
  },
};

/** An error's message; native TensorFlow's "Invalid TF_Status: 3\nMessage: ..." becomes its message. */
export function messageOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^Invalid TF_Status: \d+\s*Message:\s*/, "TensorFlow: ");
}
