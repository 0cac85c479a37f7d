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


def layout(frame, modalities, train, size, seed, perplexity=30.0):
    """One image channel per modality: a t-SNE layout of its features, fitted on the
    training rows, then every row's image. Returns (N, C, size, size) float32."""
    channels = []
    for modality in modalities:
        columns = [c for c in frame.columns if c.startswith(f"{modality}:")]
        x = frame.select(columns).to_numpy().astype(np.float64)
        # scikit-learn needs perplexity below the number of points laid out (the features).
        tsne = TSNE(n_components=2, metric="cosine", random_state=seed,
                    perplexity=min(perplexity, len(columns) - 1.0))
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


def read_features(path):
    """A features file (sample_id, split, label, then modality:feature columns): the frame,
    its modalities, classes, class indices and the row indices of each split."""
    frame = pl.read_parquet(path)
    features = [c for c in frame.columns if c not in ("sample_id", "split", "label")]
    modalities = list(dict.fromkeys(c.split(":", 1)[0] for c in features))
    split = frame["split"].to_numpy()
    classes = sorted(set(frame["label"].to_list()))
    labels = torch.tensor([classes.index(v) for v in frame["label"].to_list()])
    parts = {name: np.flatnonzero(split == name) for name in ("train", "validation", "test")}
    return frame, modalities, classes, labels, parts


def fit_resnet(images, labels, parts, n_classes, epochs, batch, lr, seed, patience=0):
    """torchvision's ResNet18 from scratch on parts["train"], the epoch with the best
    validation macro-F1 kept (stopping after `patience` epochs without a better one, 0:
    never). Returns (model with the kept weights, its epoch, its validation macro-F1)."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=n_classes)
    model.conv1 = torch.nn.Conv2d(images.shape[1], 64, kernel_size=7, stride=2, padding=3,
                                  bias=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    train_x, train_y = images[parts["train"]], labels[parts["train"]]
    valid_x, valid_y = images[parts["validation"]], labels[parts["validation"]]
    generator = torch.Generator().manual_seed(seed)
    best = (-1.0, 0, None)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            if len(rows) < 2:  # BatchNorm needs two samples, as in deepinsight
                continue
            optimizer.zero_grad()
            loss_fn(model(train_x[rows]), train_y[rows]).backward()
            optimizer.step()
        score = macro_f1(model, valid_x, valid_y, batch)
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
        elif patience and epoch - best[1] >= patience:
            break
    model.load_state_dict(best[2])
    return model, best[1], best[0]


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

    frame, modalities, classes, labels, parts = read_features(args.features)

    started = time.perf_counter()
    images = torch.from_numpy(layout(frame, modalities, parts["train"], args.size, args.seed))
    layout_s = time.perf_counter() - started

    started = time.perf_counter()
    model, best_epoch, best_valid = fit_resnet(
        images, labels, parts, len(classes), args.epochs, args.batch, 1e-3, args.seed)
    train_s = time.perf_counter() - started

    test = parts["test"]
    print(json.dumps({
        "pipeline": f"pyDeepInsight + torchvision {torch.__version__}",
        "layout_s": layout_s,
        "train_s": train_s,
        "best_epoch": best_epoch,
        "valid_macro_f1": best_valid,
        "test_macro_f1": macro_f1(model, images[test], labels[test], args.batch),
    }), flush=True)


if __name__ == "__main__":
    main()
