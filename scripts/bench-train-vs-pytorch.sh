#!/usr/bin/env bash
# One real cohort end to end, this tool against the Python pipeline a user would write
# (pyDeepInsight 0.2.3 + torchvision's ResNet18 on torch 2.15.0), same split and settings,
# same run, and prints both:
#   scripts/bench-train-vs-pytorch.sh [--cohort ../shared/datasets/tcga-kipan] [--quick]
# The Python side is benchmark tooling only: it goes into the venv bench-vs-pytorch.sh uses,
# with pyDeepInsight and what it imports added on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${DEEPINSIGHT_TORCH_VENV:-$HOME/.cache/deepinsight/torch-venv}"
if ! "$venv/bin/python" -c "import torch, torchvision, pyDeepInsight, polars, sklearn" 2>/dev/null; then
  echo "installing torch, torchvision and pyDeepInsight into $venv" >&2
  python3 -m venv "$venv"
  # pyDeepInsight imports OpenCV, pytorch-grad-cam and torchcam at import time.
  "$venv/bin/pip" install -q torch==2.15.0 torchvision==0.29.2 pyDeepInsight==0.2.3 \
    opencv-python-headless grad-cam torchcam scikit-learn polars pyarrow
fi
exec cargo run --release -- bench train --pytorch "$venv/bin/python" "$@"
