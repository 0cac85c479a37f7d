#!/usr/bin/env bash
# Times ResNet18 training and inference in Burn and in PyTorch (torchvision) on this machine's
# CPU, same thread count, same run, and prints the ratio:
#   scripts/bench-vs-pytorch.sh [--threads 2] [--quick]
# PyTorch comes from the venv scripts/torch-venv.sh makes on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/torch-venv.sh)"
exec cargo run --release -- bench model --pytorch "$python" "$@"
