"""Quantises an ONNX model with deepinsight's own quantize_qdq.py, both forms, and measures
each convolution's per-channel mean shift against the float model before and after the
script's bias correction, on the images given. Prints one JSON object per form: the mean over
convolutions of the mean |shift| / channel spread, before and after, and how many
convolutions were corrected.

    python check_bias_correction.py QUANTIZE_QDQ.py FP32.onnx IMAGES.f32 N C H W
"""
import importlib.util
import json
import os
import sys
import tempfile

import numpy as np
import onnx


def main():
    script, fp32, raw, n, c, h, w = sys.argv[1:8]
    spec = importlib.util.spec_from_file_location("quantize_qdq", script)
    q = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(q)
    images = np.fromfile(raw, dtype="<f4").reshape(int(n), int(c), int(h), int(w))

    def relative_shift(prepared, path):
        model = onnx.load(path)
        convs = [conv for conv, _, _ in q.biased_convolutions(model)]
        shifts = q.Shifts(prepared, images).of(model, convs)
        return float(np.mean([np.mean(np.abs(s) / (sd + 1e-6)) for s, sd in shifts]))

    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        head = q.prepare(fp32, prepared)
        for form in ("cpu", "tensorrt"):
            out = os.path.join(tmp, f"{form}.onnx")
            q.quantize_form(prepared, out, images, form, "auto", head)
            before = relative_shift(prepared, out)
            corrected = q.correct_biases(prepared, out, images)
            report[form] = {"before": before, "after": relative_shift(prepared, out),
                            "corrected": corrected}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
