"""Static INT8 quantisation of an ONNX model into QDQ form, driven by `deepinsight export`.

QDQ (QuantizeLinear/DequantizeLinear pairs around each quantised operator) is the form
TensorRT 10/11 builds INT8 engines from and the one ONNX Runtime fuses into integer kernels on
CPU. Weights are quantised per output channel (symmetric int8); activations per tensor, with
ranges calibrated on the images given (DeepInsight images from the run's training split).

Two models come out of one calibration:
- CPU.onnx: uint8 activations with a zero point, int8 weights (U8S8), the form ONNX Runtime's
  x86 integer kernels are fastest on (int8 activations there ran 3x slower, measured);
- TRT.onnx: int8 symmetric activations (zero point 0), which TensorRT requires.

After calibration each model's convolution biases are corrected (`correct_biases`) on the same
images, so that rounding does not shift the channels' means.

Usage: python quantize_qdq.py FP32.onnx IMAGES.f32 N C H W METHOD CPU.onnx TRT.onnx
IMAGES.f32 holds N x C x H x W little-endian float32 values. METHOD: minmax | percentile |
entropy | auto (minmax for CPU.onnx, percentile for TRT.onnx: the pair that agreed best with
fp32 on the demo's three seeds, docs/export.md). Prints one JSON line: the operator types
quantised.
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


def run_outputs(model, names, images):
    """The tensors `names` of `model` (an ONNX ModelProto) over `images`, run as written."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto.FromString(model.SerializeToString())
    known = {o.name for o in m.graph.output}
    for name in names:
        if name not in known:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(m.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    results = [session.run(names, {"input": images[i:i + 32]})
               for i in range(0, len(images), 32)]
    return [np.concatenate([r[k] for r in results]) for k in range(len(names))]


class Shifts:
    """Per-channel mean difference between a quantised model's convolutions and the float
    model's over `images`. With uint8 activations the quantiser drops the Relu after a Conv
    (the zero point clips instead) and the Conv takes over the Relu's output name: it is
    compared with the float model's Conv output before its Relu."""

    def __init__(self, float_path, images):
        import onnx
        self.float_model = onnx.load(float_path)
        self.images = images
        self.producer = {o: n for n in self.float_model.graph.node for o in n.output}
        # The float model never changes: each tensor is computed once, though the correction
        # asks for one convolution at a time.
        self.reference = {}

    def before_relu(self, name):
        node = self.producer.get(name)
        return node.input[0] if node is not None and node.op_type == "Relu" else name

    def of(self, model, convs):
        """Per convolution: the mean shift of each channel, and the float channel's spread."""
        names = [c.output[0] for c in convs]
        missing = [n for n in names if n not in self.reference]
        if missing:
            computed = run_outputs(self.float_model, [self.before_relu(n) for n in missing],
                                   self.images)
            self.reference.update(zip(missing, computed))
        quantised = run_outputs(model, names, self.images)
        return [((q - self.reference[n]).mean(axis=(0, 2, 3)),
                 self.reference[n].std(axis=(0, 2, 3)))
                for q, n in zip(quantised, names)]


def biased_convolutions(model):
    """The Conv nodes whose bias is an int32 initialiser behind a DequantizeLinear, with it."""
    initialisers = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    found = []
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and len(n.input) == 3):
        dq = producer.get(conv.input[2])
        if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in initialisers:
            found.append((conv, initialisers[dq.input[0]], initialisers[dq.input[1]]))
    return found


def correct_biases(fp32, qdq, images):
    """Empirical bias correction (Nagel et al. 2019): convolution by convolution, in graph
    order, the quantised model's mean output per channel over the calibration images is moved
    onto the float model's, through the convolution's int32 bias. Rounding weights and
    activations shifts each channel's mean a little, and the shifts add up layer after layer;
    the correction takes the systematic part out and leaves the noise. Returns the number of
    convolutions corrected."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(qdq)
    shifts = Shifts(fp32, images)
    convs = biased_convolutions(model)
    shifts.of(model, [conv for conv, _, _ in convs])  # every float reference in one run
    for conv, bias, scale in convs:
        ((shift, _),) = shifts.of(model, [conv])
        scale = numpy_helper.to_array(scale).astype(np.float64)
        values = numpy_helper.to_array(bias).astype(np.float64) * scale
        corrected = np.round((values - shift) / scale).astype(np.int32)
        bias.CopyFrom(numpy_helper.from_array(corrected, bias.name))
    onnx.save(model, qdq)
    return len(convs)


def prepare(fp32, prepared):
    """Shape inference and ONNX Runtime's graph optimisation first: BatchNormalization is
    folded into the convolutions, so each Conv (+ Relu) becomes one integer kernel. Returns the
    nodes that stay float: the head (Gemm and Softmax), since quantising the classifier and the
    softmax would put the logits and the probabilities on a 1/255 grid (measured:
    probabilities summing to 0.996) for no speed worth having; the convolutions are where the
    time goes."""
    import onnx
    quant_pre_process(fp32, prepared, skip_symbolic_shape=True)
    flatten_gemm_bias(prepared)
    return [node.name for node in onnx.load(prepared).graph.node
            if node.op_type in ("Gemm", "MatMul", "Softmax")]


# The two forms: (uint8 activations with a zero point, minmax under `auto`) for ONNX Runtime's
# CPU kernels, (int8 symmetric activations, percentile under `auto`) for TensorRT.
FORMS = {"cpu": (QuantType.QUInt8, False, "minmax"),
         "tensorrt": (QuantType.QInt8, True, "percentile")}
METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}


def quantize_form(prepared, out, images, form, method, head):
    """One QDQ model of `prepared`, calibrated on `images` (bias correction not yet applied).
    reduce_range (7-bit weights, ONNX Runtime's advice against VPMADDUBSW saturation on AVX2)
    was measured and not kept: it lowered the demo's agreement from 100% to 96.6%."""
    activations, symmetric, auto = FORMS[form]
    method = auto if method == "auto" else method
    # The histogram calibrators stack every batch's activations into one array, so their
    # batches must all be the same size: one image each.
    batch = 16 if method == "minmax" else 1
    quantize_static(
        prepared, out, Images(images, batch),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=False,
        activation_type=activations,
        weight_type=QuantType.QInt8,
        calibrate_method=METHODS[method],
        nodes_to_exclude=head,
        extra_options={
            "ActivationSymmetric": symmetric,
            # onnxruntime 1.32 raises ValueError on ResNet18 without this.
            "QDQDisableWeightAdjustForInt32Bias": True,
        },
    )


def main():
    fp32, raw, n, c, h, w, method, cpu_out, trt_out = sys.argv[1:10]
    images = np.fromfile(raw, dtype="<f4").reshape(int(n), int(c), int(h), int(w))
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        head = prepare(fp32, prepared)
        for form, out in (("cpu", cpu_out), ("tensorrt", trt_out)):
            quantize_form(prepared, out, images, form, method, head)
            correct_biases(prepared, out, images)
    import onnx
    model = onnx.load(cpu_out)
    quantised = sorted({node.op_type for node in model.graph.node
                        if node.op_type not in ("QuantizeLinear", "DequantizeLinear")
                        and any(i.endswith("_DequantizeLinear_Output") for i in node.input)})
    print(json.dumps({"quantised_operators": quantised}))


if __name__ == "__main__":
    main()
