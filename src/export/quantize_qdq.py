"""Static INT8 quantisation of an ONNX model into QDQ form, driven by `deepinsight export`.

QDQ (QuantizeLinear/DequantizeLinear pairs around each quantised operator) is the form
TensorRT 10/11 builds INT8 engines from and the one ONNX Runtime fuses into integer kernels on
CPU. Weights are quantised per output channel (symmetric int8); activations per tensor, with
ranges calibrated on the images given (DeepInsight images from the run's training split).

Two models come out of one calibration:
- CPU.onnx: uint8 activations with a zero point, int8 weights (U8S8), the form ONNX Runtime's
  x86 integer kernels are fastest on (int8 activations there ran 3x slower, measured);
- TRT.onnx: int8 symmetric activations (zero point 0), which TensorRT requires.

Usage: python quantize_qdq.py FP32.onnx IMAGES.f32 N C H W METHOD CPU.onnx TRT.onnx
IMAGES.f32 holds N x C x H x W little-endian float32 values. METHOD: minmax | percentile | entropy.
Prints one JSON line: the operator types quantised.
"""
import json
import sys
import os
import tempfile

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Images(CalibrationDataReader):
    def __init__(self, images, batch):
        self.batches = iter([images[i:i + batch] for i in range(0, len(images), batch)])

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {"input": batch}


def flatten_gemm_bias(path):
    """The classifier's bias comes out of the optimiser as a [1, classes] Gemm input; the
    per-channel bias quantiser needs it 1-D ([classes], which Gemm broadcasts the same way)."""
    import onnx
    model = onnx.load(path)
    initialisers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gemm" and len(node.input) == 3 and node.input[2] in initialisers:
            bias = initialisers[node.input[2]]
            if len(bias.dims) == 2 and bias.dims[0] == 1:
                bias.dims[:] = [bias.dims[1]]
    onnx.save(model, path)


def main():
    fp32, raw, n, c, h, w, method, cpu_out, trt_out = sys.argv[1:10]
    images = np.fromfile(raw, dtype="<f4").reshape(int(n), int(c), int(h), int(w))
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference and ONNX Runtime's graph optimisation first: BatchNormalization is
        # folded into the convolutions, so each Conv (+ Relu) becomes one integer kernel.
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(fp32, prepared, skip_symbolic_shape=True)
        flatten_gemm_bias(prepared)
        # The head stays float: quantising the classifier and the softmax would put the logits
        # and the probabilities on a 1/255 grid (measured: probabilities summing to 0.996) for
        # no speed worth having; the convolutions are where the time goes.
        import onnx
        head = [node.name for node in onnx.load(prepared).graph.node
                if node.op_type in ("Gemm", "MatMul", "Softmax")]
        # reduce_range (7-bit weights, ONNX Runtime's advice against VPMADDUBSW saturation on
        # AVX2) was measured and not kept: it lowered the demo's agreement from 100% to 96.6%.
        # The histogram calibrators stack every batch's activations into one array, so their
        # batches must all be the same size: one image each.
        batch = 16 if method == "minmax" else 1
        for out, activations, symmetric, reduce in [(cpu_out, QuantType.QUInt8, False, False),
                                                     (trt_out, QuantType.QInt8, True, False)]:
            quantize_static(
                prepared, out, Images(images, batch),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce,
                activation_type=activations,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[method],
                nodes_to_exclude=head,
                extra_options={
                    "ActivationSymmetric": symmetric,
                    # onnxruntime 1.32 raises ValueError on ResNet18 without this.
                    "QDQDisableWeightAdjustForInt32Bias": True,
                },
            )
    model = onnx.load(cpu_out)
    quantised = sorted({node.op_type for node in model.graph.node
                        if node.op_type not in ("QuantizeLinear", "DequantizeLinear")
                        and any(i.endswith("_DequantizeLinear_Output") for i in node.input)})
    print(json.dumps({"quantised_operators": quantised}))


if __name__ == "__main__":
    main()
