#!/usr/bin/env bash
# The Python the PyTorch comparisons run under (benchmark tooling only, never a dependency):
# torch 2.15.0 and torchvision 0.29.2 for `bench model` and `bench ops`, pyDeepInsight 0.2.3
# and what it imports for `bench train`. Made on first use (the Linux torch wheel pulls about
# 4 GB of CUDA libraries); prints the interpreter's path.
set -euo pipefail
venv="${DEEPINSIGHT_TORCH_VENV:-$HOME/.cache/deepinsight/torch-venv}"
if ! "$venv/bin/python" -c "import torch, torchvision, pyDeepInsight, polars, sklearn" 2>/dev/null; then
  echo "installing torch, torchvision and pyDeepInsight into $venv" >&2
  python3 -m venv "$venv" >&2
  # pyDeepInsight imports OpenCV, pytorch-grad-cam and torchcam at import time.
  "$venv/bin/pip" install -q torch==2.15.0 torchvision==0.29.2 pyDeepInsight==0.2.3 \
    opencv-python-headless grad-cam torchcam scikit-learn polars pyarrow >&2
fi
echo "$venv/bin/python"
