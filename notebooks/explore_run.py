"""Read a deepinsight run folder: metrics, predictions and layout.

Usage: python notebooks/explore_run.py models/demo
"""

import json
import sys
from pathlib import Path

import polars as pl

run = Path(sys.argv[1] if len(sys.argv) > 1 else "models/demo")
manifest = json.loads((run / "manifest.json").read_text())

print(f"classes: {manifest['classes']}")
m = manifest["metrics"]
print(f"validation accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}")
print("confusion (rows = true class):")
for name, row in zip(manifest["classes"], m["confusion"]):
    print(f"  {name:>12} {row}")

predictions = pl.read_parquet(run / "predictions.parquet")
per_class = (
    predictions.filter(pl.col("split") == "validation")
    .group_by("label")
    .agg((pl.col("label") == pl.col("predicted")).mean().alias("accuracy"), pl.len().alias("n"))
    .sort("label")
)
print(per_class)

for report in manifest["layout"]:
    print(
        f"channel {report['channel']}: {report['features']} features on "
        f"{report['pixels_used']} pixels, {report['shared_fraction']:.0%} share a pixel"
    )
