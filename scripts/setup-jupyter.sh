#!/usr/bin/env bash
# Creates the project-local Jupyter environment in .venv/ (git-ignored): JupyterLab to edit
# the notebooks, nbclient/nbconvert to run them headlessly, ipykernel (Jupyter's own tooling
# expects it), and plotly, whose wheel ships the JupyterLab plotly renderer.
#
# Design choices:
# - A virtual environment, not the system Python: nothing outside the repo changes, and
#   `rm -rf .venv` undoes it all.
# - Versions pinned to a set seen working together with the tslab kernel; the marker file
#   records that set, so changing a pin here re-runs the install and a finished set-up
#   costs well under a second.
# - `pip install --retries 0`: where the default package index is unreachable (offline
#   machines with a local wheel index), pip otherwise retries it with back-off for every
#   package and an install takes about 12 minutes instead of 20 seconds. With internet the
#   same command works unchanged.
# - The TypeScript kernel itself is not installed here: its spec lives in jupyter/kernels/
#   and is found through JUPYTER_PATH (scripts/lab.sh, scripts/run-notebooks.ts).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
marker="$venv/.mergenet-jupyter"
packages=(jupyterlab==4.6.4 nbclient==0.11.0 nbconvert==7.17.1 ipykernel==7.4.0 plotly==7.1.0)
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup-jupyter: '$python' not found. Install Python 3.9 or newer (Debian: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3." >&2
  exit 1
fi

wanted="${packages[*]}"
if [[ -f "$marker" && "$(cat "$marker")" == "$wanted" && -x "$venv/bin/jupyter-lab" ]] && "$venv/bin/python" -c "" 2>/dev/null; then
  echo "setup-jupyter: .venv is ready ($wanted)"
  exit 0
fi

start=$SECONDS
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "" 2>/dev/null; then
  rm -rf "$venv"
  echo "setup-jupyter: creating .venv with $("$python" --version 2>&1)"
  if ! "$python" -m venv "$venv"; then
    echo "setup-jupyter: '$python -m venv' failed. On Debian/Ubuntu install the venv module: apt-get install python3-venv" >&2
    exit 1
  fi
fi

echo "setup-jupyter: installing $wanted"
"$venv/bin/python" -m pip install --retries 0 --disable-pip-version-check --quiet "${packages[@]}"
"$venv/bin/python" -c "import nbclient, jupyterlab, plotly"
echo "$wanted" >"$marker"
echo "setup-jupyter: done in $((SECONDS - start)) s"
