#!/usr/bin/env bash
# Fits scikit-learn's RandomForestClassifier (500 trees) and LogisticRegression (C = 1) on the
# folds and fitted features that `deepinsight evaluate --fold-features DIR` wrote, and prints
# each one's metrics as mean ± sd over the folds: the same numbers `evaluate` prints for its
# own baselines, for docs/evaluation.md. Makes its own Python environment from PyPI.
#   scripts/compare-baselines.sh DIR
set -euo pipefail
venv="${DEEPINSIGHT_SKLEARN_VENV:-$HOME/.cache/deepinsight/sklearn-venv}"
if ! "$venv/bin/python" -c "import sklearn, polars, pyarrow" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check scikit-learn polars pyarrow >&2
fi
exec "$venv/bin/python" "$(dirname "$0")/compare_baselines.py" "$@"
