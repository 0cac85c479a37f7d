#!/usr/bin/env bash
# The Python virtual environment the tests use: nbclient, nbformat, ipykernel, polars and
# requests to run notebooks/ (tests/notebooks.rs); onnx and onnxruntime, which `deepinsight
# export` uses to make and check the ONNX models (DEEPINSIGHT_PYTHON) and the tests to check
# them again; coremltools to load and type-check the Core ML package (tests/export.rs);
# Triton's client and schemathesis to call the server as others do (tests/serve.rs);
# websocket-client to drive headless Chromium over its DevTools protocol (tests/report.rs).
# All from PyPI. Prints the interpreter's path.
#   export DEEPINSIGHT_NOTEBOOK_PYTHON="$(scripts/setup-notebooks.sh)"
set -euo pipefail
venv="${DEEPINSIGHT_NOTEBOOK_VENV:-$HOME/.cache/deepinsight/nb-venv}"
modules="import nbclient, nbformat, ipykernel, polars, requests, onnx, onnxruntime, numpy, coremltools, tritonclient.http, schemathesis, websocket"
if ! "$venv/bin/python" -c "$modules" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check nbclient nbformat ipykernel polars requests onnx onnxruntime numpy coremltools "tritonclient[http]" "schemathesis>=4,<5" websocket-client >&2
  "$venv/bin/python" -c "$modules"
fi
echo "$venv/bin/python"
