"""scikit-learn's random forest and logistic regression on the folds of
`deepinsight evaluate --fold-features DIR` (see compare-baselines.sh)."""

import glob
import sys

import numpy as np
import polars as pl
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score


def macro_auroc(truth, probabilities, classes):
    scores = []
    for c, name in enumerate(classes):
        positive = truth == name
        if positive.any() and (~positive).any():
            scores.append(roc_auc_score(positive, probabilities[:, c]))
    return float(np.mean(scores)) if scores else float("nan")


def main(folder):
    models = {
        "sklearn_logistic": lambda seed: LogisticRegression(C=1.0, max_iter=5000),
        "sklearn_random_forest": lambda seed: RandomForestClassifier(
            n_estimators=500, random_state=seed, n_jobs=-1
        ),
    }
    results = {name: [] for name in models}
    for k, path in enumerate(sorted(glob.glob(f"{folder}/repeat*-fold*.parquet"))):
        frame = pl.read_parquet(path)
        features = [c for c in frame.columns if c not in ("sample_id", "split", "label")]
        # The baselines train on the whole training fold: the inner training and validation
        # rows alike.
        train = frame.filter(pl.col("split") != "test")
        test = frame.filter(pl.col("split") == "test")
        x, y = train.select(features).to_numpy(), train["label"].to_numpy()
        xt, yt = test.select(features).to_numpy(), test["label"].to_numpy()
        for name, make in models.items():
            model = make(k).fit(x, y)
            p = model.predict_proba(xt)
            predicted = model.classes_[p.argmax(axis=1)]
            results[name].append(
                (
                    accuracy_score(yt, predicted),
                    balanced_accuracy_score(yt, predicted),
                    f1_score(yt, predicted, average="macro"),
                    macro_auroc(yt, p, list(model.classes_)),
                )
            )
    print(f"{'model':<24} {'accuracy':>15} {'balanced accuracy':>18} {'macro-F1':>15} {'AUROC':>15}")
    for name, rows in results.items():
        a = np.array(rows)
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(a.mean(axis=0), a.std(axis=0, ddof=1))]
        print(f"{name:<24} {cells[0]:>15} {cells[1]:>18} {cells[2]:>15} {cells[3]:>15}")


if __name__ == "__main__":
    main(sys.argv[1])
