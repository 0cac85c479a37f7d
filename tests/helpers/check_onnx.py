"""Runs an ONNX model in ONNX Runtime after the ONNX checker's full check.

Usage: python check_onnx.py MODEL IMAGES OUT N C H W
With CHECK_ONNX_UNOPTIMISED=1 in the environment, graph optimisations are off.
IMAGES holds N*C*H*W float32 values (little-endian); OUT receives the `logits` then the
`probabilities` outputs, float32. Prints the input and output names and shapes.
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, images_path, out_path = sys.argv[1:4]
n, c, h, w = map(int, sys.argv[4:8])
onnx.checker.check_model(onnx.load(model_path), full_check=True)
options = ort.SessionOptions()
if os.environ.get("CHECK_ONNX_UNOPTIMISED"):
    # The QDQ reference semantics: the graph as written, no fused integer kernels.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
images = np.fromfile(images_path, dtype="<f4").reshape(n, c, h, w)
logits, probabilities = session.run(["logits", "probabilities"], {"input": images})
np.concatenate([logits.ravel(), probabilities.ravel()]).astype("<f4").tofile(out_path)
print([(i.name, i.shape) for i in session.get_inputs()], [(o.name, o.shape) for o in session.get_outputs()])
