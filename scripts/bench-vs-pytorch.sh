#!/usr/bin/env bash
# Times ResNet18 training and inference in Burn and in PyTorch (torchvision) on this machine's
# CPU, same thread count, same run, and prints the ratio:
#   scripts/bench-vs-pytorch.sh [--threads 2] [--quick]
# PyTorch is benchmark tooling only: it goes into a venv created on first use (the Linux wheel
# pulls about 4 GB of CUDA libraries; ~2 minutes on this machine's connection).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${DEEPINSIGHT_TORCH_VENV:-$HOME/.cache/deepinsight/torch-venv}"
if ! "$venv/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  echo "installing torch 2.15.0 + torchvision 0.29.2 into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.15.0 torchvision==0.29.2
fi
exec cargo run --release -- bench model --pytorch "$venv/bin/python" "$@"
