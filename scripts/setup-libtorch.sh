#!/usr/bin/env bash
# A CPU libtorch for `cargo build --release --features tch`, from PyPI's torch 2.9.0 wheel
# (the version burn-tch 0.22 wants) in ~1.8 GB instead of the 6.7 GB of the full CUDA stack:
#   eval "$(scripts/setup-libtorch.sh)"     # prints the exports; run once per shell
#   cargo build --release --features tch
# The wheel's libtorch_cpu.so is linked through a LIBTORCH folder whose lib/ also holds an
# empty stub libtorch.so, so the CUDA half (libtorch_cuda.so and its libraries) is never
# loaded; only the CUDA runtime and CUPTI libraries the CPU library references are installed.
set -euo pipefail
root="${DEEPINSIGHT_LIBTORCH_DIR:-$HOME/.cache/deepinsight/libtorch}"
wheels="$root/wheels"
site="$root/site"
if [ ! -f "$root/ready" ]; then
  mkdir -p "$wheels" "$site"
  python3 -m pip download -q --no-deps -d "$wheels" torch==2.9.0 \
    nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90 >&2
  python3 -m pip install -q --no-deps --target "$site" "$wheels"/*.whl >&2
  rm -rf "$wheels"
  rm -rf "$root/LIBTORCH" && mkdir -p "$root/LIBTORCH/lib"
  ln -s "$site/torch/include" "$root/LIBTORCH/include"
  for lib in libtorch_cpu.so libc10.so; do
    ln -s "$site/torch/lib/$lib" "$root/LIBTORCH/lib/$lib"
  done
  gomp=$(ls "$site/torch/lib/" | grep -m1 '^libgomp' || true)
  [ -n "$gomp" ] && ln -s "$site/torch/lib/$gomp" "$root/LIBTORCH/lib/$gomp"
  # The stub: torch-sys links -ltorch; an empty library satisfies it without the CUDA half.
  echo 'void deepinsight_libtorch_stub(void) {}' > "$root/stub.c"
  gcc -shared -fPIC -o "$root/LIBTORCH/lib/libtorch.so" "$root/stub.c"
  touch "$root/ready"
fi
nvidia="$site/nvidia"
echo "export LIBTORCH='$root/LIBTORCH'"
echo "export LIBTORCH_BYPASS_VERSION_CHECK=1"
echo "export LD_LIBRARY_PATH='$root/LIBTORCH/lib:$site/torch/lib:$nvidia/cuda_runtime/lib:$nvidia/cuda_cupti/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
