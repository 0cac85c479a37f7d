"""torchvision's resnet18 on CPU: images/s of a training step (forward, cross-entropy, backward,
Adam) and of inference, for the cases `deepinsight bench model` times in Burn. One JSON line per
case on stdout. Benchmark tooling only (see scripts/bench-vs-pytorch.sh)."""

import argparse
import json
import time

import torch
import torchvision


def rate(batch, min_seconds, step):
    step()
    started = time.perf_counter()
    steps = 0
    while steps < 2 or time.perf_counter() - started < min_seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="64,224")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    for size in map(int, args.sizes.split(",")):
        for batch in map(int, args.batches.split(",")):
            net = torchvision.models.resnet18(num_classes=3)
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
            loss_fn = torch.nn.CrossEntropyLoss()
            x = torch.rand(batch, 3, size, size)
            y = torch.arange(batch) % 3

            def train_step():
                optimizer.zero_grad()
                loss_fn(net(x), y).backward()
                optimizer.step()

            net.train()
            train = rate(batch, args.min_seconds, train_step)
            net.eval()

            def infer_step():
                with torch.inference_mode():
                    net(x)

            infer = rate(batch, args.min_seconds, infer_step)
            for mode, value in (("train", train), ("infer", infer)):
                print(json.dumps({"size": size, "batch": batch, "mode": mode,
                                  "images_per_second": value,
                                  "torch": torch.__version__, "threads": args.threads}),
                      flush=True)


if __name__ == "__main__":
    main()
