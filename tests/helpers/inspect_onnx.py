"""Prints, as JSON, what tests assert about an exported ONNX model: operator counts, the types
of the initialisers, the element types of quantised activations, how many activation zero
points are not 0, and how many Conv weights are quantised per output channel.

Usage: python inspect_onnx.py MODEL
"""
import collections
import json
import sys

import onnx
from onnx import numpy_helper

model = onnx.load(sys.argv[1])
graph = model.graph
initialisers = {t.name: t for t in graph.initializer}
ops = collections.Counter(node.op_type for node in graph.node)
names = {v: k for k, v in onnx.TensorProto.DataType.items()}
types = sorted({names[t.data_type].lower() for t in graph.initializer})
activation_types, nonzero = set(), 0
for node in graph.node:
    # Activations are quantised at run time (QuantizeLinear); weights are stored quantised.
    if node.op_type == "QuantizeLinear" and len(node.input) > 2:
        zero = numpy_helper.to_array(initialisers[node.input[2]])
        activation_types.add(str(zero.dtype))
        nonzero += int((zero != 0).sum())
producers = {o: n for n in graph.node for o in n.output}
per_channel = 0
for node in graph.node:
    if node.op_type == "Conv":
        weight = producers.get(node.input[1])
        if weight is not None and weight.op_type == "DequantizeLinear":
            scale = numpy_helper.to_array(initialisers[weight.input[1]])
            per_channel += int(scale.ndim == 1 and scale.size > 1)
print(json.dumps({
    "ops": ops,
    "initializer_types": types,
    "activation_types": sorted(activation_types),
    "nonzero_activation_zero_points": nonzero,
    "quantised_conv_weights_per_channel": per_channel,
}))
