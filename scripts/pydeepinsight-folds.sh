#!/usr/bin/env bash
# pyDeepInsight 0.2.3 + torchvision's ResNet18 on the same folds, inner splits and fitted
# features as `deepinsight evaluate PIPELINE`, beside this tool's CNN (docs/accuracy.md):
#   scripts/pydeepinsight-folds.sh PIPELINE [EVALUATION_JSON [--size N]]
# Writes the folds with `evaluate --baselines-only --fold-features` (the folds depend only on
# the seed, the labels and [evaluate]), then trains the Python pipeline on each. Give the
# evaluation.json of the CNN (`deepinsight evaluate PIPELINE`, or `bench accuracy`) for the
# paired difference. The Python side comes from scripts/torch-venv.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
pipeline="$1"
python="$(scripts/torch-venv.sh)"
"$python" -c "import scipy" 2>/dev/null || "$python" -m pip install -q scipy >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
name="$(basename "$pipeline" .toml)-pydeepinsight"
cargo run --release --quiet -- evaluate "$pipeline" --baselines-only \
  --set "name=\"$name\"" --set "output_dir=\"$work\"" --fold-features "$work/folds" >/dev/null
exec "$python" scripts/pydeepinsight_folds.py --folds "$work/folds" --pipeline "$pipeline" \
  ${2:+--evaluation "$2"} "${@:3}"
