#!/usr/bin/env bash
# Starts the tslab TypeScript kernel for this repository. Jupyter passes the connection file.
#
# Design choices:
# - `cd` to the repo root first: tslab type-checks cells with rootDir set to the kernel's
#   working directory, so notebooks import `./src` (src.ts, which forwards to src/index.ts)
#   and that only compiles and resolves from the root.
# - The repo root is found from this file's place (jupyter/kernels/mergenet-ts/), so the
#   spec works from any clone without an install step; Jupyter finds the spec through
#   JUPYTER_PATH=<repo>/jupyter (scripts/lab.sh and scripts/run-notebooks.ts set it).
# - TF_CPP_MIN_LOG_LEVEL=3 keeps TensorFlow's start-up chatter out of the saved notebooks.
# - MERGENET_LOG defaults to `silent` so progress messages do not fill saved notebooks with
#   stderr blocks (warnings are always shown); export MERGENET_LOG=info before starting
#   Jupyter to see them.
# - cell-errors.js is preloaded (NODE_OPTIONS=--require) so a failing cell prints its error's
#   sentence and causes instead of a stack of tfjs internals; MERGENET_DEBUG=1 keeps the stack.
set -euo pipefail
connection_file="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$repo"
if [[ ! -x node_modules/.bin/tslab ]]; then
  echo "mergenet-ts kernel: $repo/node_modules/.bin/tslab is missing; run 'npm ci' in $repo" >&2
  exit 1
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
export MERGENET_LOG="${MERGENET_LOG:-silent}"
export MERGENET_KERNEL=1
export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--require \"$repo/jupyter/kernels/mergenet-ts/cell-errors.js\""
exec node_modules/.bin/tslab kernel --config-path "$connection_file"
