"""PyTorch's convolution and BatchNorm ops on CPU at ResNet18's shapes, in ms per call: the
convolutions' forward (`conv2d`), input gradient and weight gradient
(`aten.convolution_backward`), and the training-mode BatchNorms' forward and backward
(`aten.native_batch_norm` and `aten.native_batch_norm_backward`), for the shapes
`deepinsight bench ops` passes. One JSON line per (layer or norm, op) on stdout. Benchmark
tooling only (see `deepinsight bench ops --pytorch`)."""

import argparse
import json
import time

import torch

from bench_torch import rate  # same folder: Python puts the script's on the path


def time_ms(min_seconds, call):
    """Milliseconds per call: bench_torch.py's timing, one call a step."""
    return 1e3 / rate(1, min_seconds, call)


def report(kind, name, calls, args):
    """One JSON line per op of `calls`: {kind: name, op, ms, torch, threads}."""
    with torch.no_grad():
        for op, call in calls.items():
            print(json.dumps({kind: name, "op": op, "ms": time_ms(args.min_seconds, call),
                              "torch": torch.__version__, "threads": args.threads}),
                  flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", required=True, help="JSON list from bench ops")
    parser.add_argument("--norms", default="[]", help="JSON list from bench ops")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    for layer in json.loads(args.layers):
        c_in, c_out, side = layer["in_channels"], layer["out_channels"], layer["side"]
        k, stride = layer["kernel"], layer["stride"]
        pad = k // 2
        x = torch.rand(args.batch, c_in, side, side) * 2 - 1
        w = torch.rand(c_out, c_in, k, k) * 2 - 1
        with torch.no_grad():
            y = torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)
        dy = torch.rand_like(y) * 2 - 1

        def backward(mask):
            return lambda: torch.ops.aten.convolution_backward(
                dy, x, w, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        calls = {
            "forward": lambda: torch.nn.functional.conv2d(x, w, stride=stride, padding=pad),
            "input": backward([True, False, False]),
            "weight": backward([False, True, False]),
        }
        report("layer", layer["name"], calls, args)

    for norm in json.loads(args.norms):
        c, side = norm["channels"], norm["side"]
        x = torch.rand(args.batch, c, side, side) * 2 - 1
        dy = torch.rand_like(x) * 2 - 1
        gamma, beta = torch.ones(c), torch.zeros(c)
        running_mean, running_var = torch.zeros(c), torch.ones(c)
        _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
            x, gamma, beta, running_mean, running_var, True, 0.1, 1e-5)
        calls = {
            "forward": lambda: torch.ops.aten.native_batch_norm(
                x, gamma, beta, running_mean, running_var, True, 0.1, 1e-5),
            "backward": lambda: torch.ops.aten.native_batch_norm_backward(
                dy, x, gamma, running_mean, running_var, save_mean, save_invstd, True, 1e-5,
                [True, True, True]),
        }
        report("norm", norm["name"], calls, args)


if __name__ == "__main__":
    main()
