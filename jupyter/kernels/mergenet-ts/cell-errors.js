// How an error thrown in a notebook cell reads: as its sentence, not as a stack of tfjs internals.
//
// tslab prints a failed cell's error with console.error, that is with util.inspect, which
// shows the message followed by every stack frame (tfjs's, Node's, tslab's). start-kernel.sh
// loads this file into the kernel (NODE_OPTIONS=--require) with MERGENET_KERNEL=1, and it gives
// Error.prototype an inspect method that prints
//
//     Error: <the message>
//       caused by: <the message of error.cause, if any, and of its cause..., unless already quoted>
//       (MERGENET_DEBUG=1 shows the JavaScript stack)
//
// Design choices:
// - Only the printed form changes: error.stack, instanceof and error handling are untouched,
//   and code that reads error.stack still gets it.
// - It is installed only in the kernel (MERGENET_KERNEL=1), never by requiring this file in a
//   test or a script; MERGENET_DEBUG=1 at kernel start leaves Node's usual printing in place.
// - Plain JavaScript, because it is loaded before tslab can compile anything.
"use strict";
const util = require("util");

const DEBUG_HINT = "(MERGENET_DEBUG=1 shows the JavaScript stack)";

/** A message as a sentence: native TensorFlow's "Invalid TF_Status: 3\nMessage: ..." loses its preamble. */
function readable(message) {
  return String(message).replace(/^Invalid TF_Status: \d+\s*Message:\s*/, "TensorFlow: ");
}

/** The sentence form of an error: name and message, then each cause's message, then the hint. */
function formatCellError(error) {
  const head = `${error.name || "Error"}: ${readable(error.message)}`;
  const lines = [head];
  const seen = new Set([error]);
  let cause = error.cause;
  while (cause !== undefined && !seen.has(cause)) {
    seen.add(cause);
    const message = readable(cause instanceof Error ? cause.message : cause);
    // A wrapper that already quotes its cause's message (the runner's "... failed: <message>") is not repeated.
    if (!lines.some((line) => line.includes(message))) lines.push(`  caused by: ${cause instanceof Error ? `${cause.name || "Error"}: ` : ""}${message}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  lines.push(`  ${DEBUG_HINT}`);
  return lines.join("\n");
}

/** Makes every Error print as formatCellError; returns a function that undoes it. */
function installCellErrors() {
  const key = util.inspect.custom;
  const previous = Object.getOwnPropertyDescriptor(Error.prototype, key);
  Object.defineProperty(Error.prototype, key, {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function inspectAsSentence() {
      return formatCellError(this);
    },
  });
  return () => {
    if (previous) Object.defineProperty(Error.prototype, key, previous);
    else delete Error.prototype[key];
  };
}

module.exports = { formatCellError, installCellErrors, readable, DEBUG_HINT };

if (process.env.MERGENET_KERNEL === "1" && process.env.MERGENET_DEBUG !== "1") installCellErrors();
