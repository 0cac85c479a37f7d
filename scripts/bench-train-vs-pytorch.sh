#!/usr/bin/env bash
# One real cohort end to end, this tool against the Python pipeline a user would write
# (pyDeepInsight 0.2.3 + torchvision's ResNet18 on torch 2.15.0), same split and settings,
# same run, and prints both:
#   scripts/bench-train-vs-pytorch.sh [--cohort ../shared/datasets/tcga-kipan] [--quick]
# The Python side comes from the venv scripts/torch-venv.sh makes on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/torch-venv.sh)"
exec cargo run --release -- bench train --pytorch "$python" "$@"
