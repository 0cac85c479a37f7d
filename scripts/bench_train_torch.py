"""The pipeline a user would write in Python, for `deepinsight bench train --pytorch`:
pyDeepInsight's ImageTransformer (t-SNE with cosine distance per modality, `bin`
discretisation) feeding torchvision's ResNet18 trained from scratch (Adam at 1e-3, validation
after every epoch, the best epoch's weights kept), on the features, split and settings that
`bench train` passes. Prints one JSON line: the layout and training seconds and the macro-F1s.
Benchmark tooling only."""

import argparse
import copy
import json
import time

import numpy as np
import polars as pl
import torch
import torchvision
from pyDeepInsight import ImageTransformer
from sklearn.manifold import TSNE
from sklearn.metrics import f1_score


def layout(frame, modalities, train, size, seed):
    """One image channel per modality: a t-SNE layout of its features, fitted on the
    training rows, then every row's image. Returns (N, C, size, size) float32."""
    channels = []
    for modality in modalities:
        columns = [c for c in frame.columns if c.startswith(f"{modality}:")]
        x = frame.select(columns).to_numpy().astype(np.float64)
        # scikit-learn needs perplexity below the number of points laid out (the features).
        tsne = TSNE(n_components=2, metric="cosine", random_state=seed,
                    perplexity=min(30.0, len(columns) - 1.0))
        transformer = ImageTransformer(feature_extractor=tsne, discretization="bin",
                                       pixels=(size, size))
        transformer.fit(x[train])
        channels.append(transformer.transform(x, img_format="scalar"))
    return np.stack(channels, axis=1).astype(np.float32)


def macro_f1(model, images, labels, batch):
    model.eval()
    predicted = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            predicted.append(model(images[start:start + batch]).argmax(dim=1))
    return f1_score(labels.numpy(), torch.cat(predicted).numpy(), average="macro")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", required=True, help="parquet from bench train")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    frame = pl.read_parquet(args.features)
    features = [c for c in frame.columns if c not in ("sample_id", "split", "label")]
    modalities = list(dict.fromkeys(c.split(":", 1)[0] for c in features))
    split = frame["split"].to_numpy()
    classes = sorted(set(frame["label"].to_list()))
    labels = torch.tensor([classes.index(v) for v in frame["label"].to_list()])
    parts = {name: np.flatnonzero(split == name) for name in ("train", "validation", "test")}

    started = time.perf_counter()
    images = torch.from_numpy(layout(frame, modalities, parts["train"], args.size, args.seed))
    layout_s = time.perf_counter() - started

    model = torchvision.models.resnet18(num_classes=len(classes))
    model.conv1 = torch.nn.Conv2d(len(modalities), 64, kernel_size=7, stride=2, padding=3,
                                  bias=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    train_x, train_y = images[parts["train"]], labels[parts["train"]]
    valid_x, valid_y = images[parts["validation"]], labels[parts["validation"]]
    generator = torch.Generator().manual_seed(args.seed)
    best = (-1.0, 0, None)
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), args.batch):
            rows = order[start:start + args.batch]
            if len(rows) < 2:  # BatchNorm needs two samples, as in deepinsight
                continue
            optimizer.zero_grad()
            loss_fn(model(train_x[rows]), train_y[rows]).backward()
            optimizer.step()
        score = macro_f1(model, valid_x, valid_y, args.batch)
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
    train_s = time.perf_counter() - started

    model.load_state_dict(best[2])
    test = parts["test"]
    print(json.dumps({
        "pipeline": f"pyDeepInsight + torchvision {torch.__version__}",
        "layout_s": layout_s,
        "train_s": train_s,
        "best_epoch": best[1],
        "valid_macro_f1": best[0],
        "test_macro_f1": macro_f1(model, images[test], labels[test], args.batch),
    }), flush=True)


if __name__ == "__main__":
    main()
