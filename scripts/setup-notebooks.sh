#!/usr/bin/env bash
# A Python virtual environment for running notebooks/ (and their test, tests/notebooks.rs):
# nbclient, nbformat, ipykernel, polars and requests from PyPI. Prints the interpreter's path.
#   export DEEPINSIGHT_NOTEBOOK_PYTHON="$(scripts/setup-notebooks.sh)"
set -euo pipefail
venv="${DEEPINSIGHT_NOTEBOOK_VENV:-$HOME/.cache/deepinsight/nb-venv}"
modules="import nbclient, nbformat, ipykernel, polars, requests"
if ! "$venv/bin/python" -c "$modules" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check nbclient nbformat ipykernel polars requests >&2
  "$venv/bin/python" -c "$modules"
fi
echo "$venv/bin/python"
