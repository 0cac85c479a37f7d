"""Loads a Core ML package with coremltools, type-checks its ML Program (coremltools' MIL
frontend infers every operation's output type from its inputs and refuses a mismatch with the
declared one), then evaluates the program with numpy on images, operation by operation, from
the values coremltools read (weights from the package's blob file through coremltools' own
reader). Core ML itself predicts only on macOS; this checks the package's meaning elsewhere.

Usage: python check_coreml.py PACKAGE IMAGES N C H W
IMAGES holds N*C*H*W float32 values (little-endian). Prints JSON: operation counts, class names,
per-image probabilities (in class-name order of the classify op) and labels.
"""
import collections
import json
import os
import sys

import numpy as np
import coremltools as ct
from coremltools.converters.mil.frontend.milproto.load import load as load_mil

package = sys.argv[1]
n, c, h, w = map(int, sys.argv[3:7])
images = np.fromfile(sys.argv[2], dtype="<f4").reshape(n, c, h, w)

spec = ct.utils.load_spec(package)
ct.models.MLModel(package, skip_model_load=True)
program = load_mil(spec, specification_version=spec.specificationVersion,
                   file_weights_dir=os.path.join(package, "Data/com.apple.CoreML/weights"))
main = program.functions["main"]


def windows(x, kh, kw, stride):
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1]]


def pad(x, p, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[1]), (p[2], p[3])), constant_values=value)


def run(image):
    env = {"input": image}
    result = None
    for op in main.operations:
        v = lambda key: env[op.inputs[key].name] if op.inputs[key].name in env else op.inputs[key].val
        t = op.op_type
        if t == "const":
            out = op.outputs[0].val
        elif t == "constexpr_affine_dequantize":
            q = op.quantized_data.val.astype(np.float32)
            shape = [1] * q.ndim
            shape[op.axis.val] = -1
            out = (q - op.zero_point.val.astype(np.float32).reshape(shape)) * op.scale.val.reshape(shape)
        elif t == "expand_dims":
            out = np.expand_dims(v("x"), tuple(v("axes")))
        elif t == "conv":
            x = pad(v("x"), v("pad"))
            weight = v("weight")
            out = np.einsum("nchwij,ocij->nohw", windows(x, *weight.shape[2:], v("strides")), weight)
        elif t == "batch_norm":
            s = (1, -1, 1, 1)
            out = (v("x") - v("mean").reshape(s)) / np.sqrt(v("variance").reshape(s) + v("epsilon")) \
                * v("gamma").reshape(s) + v("beta").reshape(s)
        elif t == "relu":
            out = np.maximum(v("x"), 0)
        elif t == "add":
            out = v("x") + v("y")
        elif t == "max_pool":
            x = pad(v("x"), v("pad"), -np.inf)
            out = windows(x, *v("kernel_sizes"), v("strides")).max(axis=(4, 5))
        elif t == "reduce_mean":
            out = v("x").mean(axis=tuple(v("axes")), keepdims=bool(v("keep_dims")))
        elif t == "linear":
            out = v("x") @ v("weight").T + v("bias")
        elif t == "softmax":
            x = v("x")
            e = np.exp(x - x.max(axis=int(v("axis")), keepdims=True))
            out = e / e.sum(axis=int(v("axis")), keepdims=True)
        elif t == "squeeze":
            out = np.squeeze(v("x"), tuple(v("axes")))
        elif t == "classify":
            result = v("probabilities")
            continue
        else:
            raise SystemExit(f"no numpy evaluation for {t}")
        out = np.asarray(out)
        env[op.outputs[0].name] = out.astype(np.float32) if out.dtype.kind == "f" else out
    return result


classify = [op for op in main.operations if op.op_type == "classify"][0]
classes = [str(x) for x in classify.classes.val]
probabilities = [run(images[i]).tolist() for i in range(n)]
print(json.dumps({
    "ops": collections.Counter(op.op_type for op in main.operations),
    "classes": classes,
    "probabilities": probabilities,
    "predicted_feature": spec.description.predictedFeatureName,
    "input_shape": list(spec.description.input[0].type.multiArrayType.shape),
}))
