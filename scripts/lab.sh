#!/usr/bin/env bash
# `npm run lab [-- extra jupyter-lab args]`: JupyterLab on notebooks/ with the project's
# TypeScript kernel ("TypeScript (MergeNet)").
#
# Design choices:
# - Runs scripts/setup-jupyter.sh first; it returns at once when .venv is already set up.
# - The kernel spec is found through JUPYTER_PATH=<repo>/jupyter; runtime files go to
#   <repo>/.jupyter-runtime (git-ignored). Nothing is installed outside the repository.
# - The token is fixed before start (JUPYTER_TOKEN, or a random one) and the port is strict
#   (no silent move to the next free port), so the URL printed here is the one that works.
#   MERGENET_LAB_PORT picks the port (default 8888).
# - No browser is opened on a machine without a display; as root, --allow-root is passed
#   (Jupyter refuses root otherwise, and containers often run as root).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup-jupyter.sh"

if [[ ! -x "$repo/node_modules/.bin/tslab" ]]; then
  echo "lab: node_modules/.bin/tslab is missing; run 'npm ci' first" >&2
  exit 1
fi

export JUPYTER_PATH="$repo/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export JUPYTER_RUNTIME_DIR="$repo/.jupyter-runtime"
mkdir -p "$JUPYTER_RUNTIME_DIR"

port="${MERGENET_LAB_PORT:-8888}"
token="${JUPYTER_TOKEN:-$("$repo/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')}"
export JUPYTER_TOKEN="$token"

flags=(--notebook-dir="$repo/notebooks" --port="$port" --port-retries=0)
[[ "$(id -u)" == "0" ]] && flags+=(--allow-root)
[[ -z "${DISPLAY:-}" && "$(uname)" != "Darwin" ]] && flags+=(--no-browser)

echo "lab: JupyterLab at http://localhost:$port/lab?token=$token"
echo "lab: choose the kernel \"TypeScript (MergeNet)\"; stop with Ctrl-C"
exec "$repo/.venv/bin/jupyter" lab "${flags[@]}" "$@"
