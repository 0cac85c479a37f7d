"""The pipeline a user would write in Python (pyDeepInsight's t-SNE layout per modality with
`bin`, torchvision's ResNet18 from scratch), on exactly the folds, inner splits and fitted
features of `deepinsight evaluate --fold-features DIR`, with the pipeline file's image size,
epochs, batch size, learning rate, patience and perplexity. Prints its test macro-F1 per fold,
the mean ± sd, and, given this tool's evaluation.json of the same folds, the paired
difference with the corrected resampled t interval that `evaluate` uses. Benchmark tooling
only (scripts/pydeepinsight-folds.sh runs it)."""

import argparse
import glob
import json
import math
import os
import re
import sys
import tomllib

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, os.path.dirname(__file__))
from bench_train_torch import fit_resnet, layout, macro_f1, read_features  # noqa: E402


def settings(pipeline):
    with open(pipeline, "rb") as f:
        config = tomllib.load(f)
    lay, train = config.get("layout", {}), config.get("train", {})
    # The tool's defaults where the file is silent (src/*/settings.rs).
    return {
        "size": lay.get("height", 224),
        "perplexity": lay.get("perplexity", 30.0),
        "epochs": train.get("epochs", 10),
        "batch": train.get("batch_size", 16),
        "lr": train.get("learning_rate", 1e-3),
        "patience": train.get("early_stopping_patience", 0),
        "seed": config.get("seed", 42),
    }


def corrected_interval(differences, test_to_train):
    """Nadeau and Bengio's corrected resampled t: as crossval/stats.rs."""
    d = np.asarray(differences, dtype=float)
    j = len(d)
    se = math.sqrt((1.0 / j + test_to_train) * d.var(ddof=1))
    t = stats.t.ppf(0.975, j - 1)
    return d.mean(), d.mean() - t * se, d.mean() + t * se


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", required=True, help="the --fold-features folder")
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--evaluation", help="this tool's evaluation.json on the same folds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, help="image side (default: the pipeline's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    s = settings(args.pipeline)
    s["size"] = args.size or s["size"]

    scores, sizes = {}, {}
    for path in sorted(glob.glob(f"{args.folds}/repeat*-fold*.parquet")):
        repeat, fold = map(int, re.search(r"repeat(\d+)-fold(\d+)", path).groups())
        frame, modalities, classes, labels, parts = read_features(path)
        images = torch.from_numpy(
            layout(frame, modalities, parts["train"], s["size"], s["seed"], s["perplexity"]))
        model, epoch, _ = fit_resnet(images, labels, parts, len(classes), s["epochs"],
                                     s["batch"], s["lr"], s["seed"] + repeat - 1, s["patience"])
        test = parts["test"]
        f1 = macro_f1(model, images[test], labels[test], s["batch"])
        scores[(repeat, fold)] = f1
        sizes[(repeat, fold)] = (len(parts["train"]) + len(parts["validation"]), len(test))
        print(json.dumps({"repeat": repeat, "fold": fold, "best_epoch": epoch,
                          "test_macro_f1": f1}), flush=True)

    values = np.array(list(scores.values()))
    print(f"pyDeepInsight + torchvision {torch.__version__}: macro-F1 "
          f"{values.mean():.3f} ± {values.std(ddof=1):.3f} over {len(values)} folds")
    if args.evaluation:
        with open(args.evaluation) as f:
            ours = {(r["repeat"], r["fold"]): r["macro_f1"]
                    for r in json.load(f)["per_fold"] if r["model"] == "cnn"}
        keys = sorted(scores)
        if sorted(ours) != keys:
            sys.exit(f"{args.evaluation} has other folds than {args.folds}")
        differences = [100.0 * (ours[k] - scores[k]) for k in keys]
        train, test = (np.mean([sizes[k][i] for k in keys]) for i in (0, 1))
        mean, low, high = corrected_interval(differences, test / train)
        print(f"deepinsight CNN minus pyDeepInsight + torchvision: {mean:+.1f} points "
              f"(95% CI {low:+.1f} to {high:+.1f})")


if __name__ == "__main__":
    main()
