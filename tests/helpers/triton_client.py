"""Calls a deepinsight server with Triton's own KServe v2 HTTP client (tritonclient), which
sends tensors and asks for outputs with the binary data extension by default.

usage: triton_client.py HOST:PORT MODEL TENSOR.json
TENSOR.json: {"name": "input" or "omics", "shape": [...], "data": [...]} (images [N, C, H, W]
or raw omics rows [N, F]). Prints the outputs as JSON.
"""
import json
import sys

import numpy as np
import tritonclient.http as triton

url, model, path = sys.argv[1:4]
with open(path) as f:
    spec = json.load(f)
values = np.asarray(spec["data"], dtype=np.float32).reshape(spec["shape"])

client = triton.InferenceServerClient(url=url)
assert client.is_server_live(), "not live"
assert client.is_model_ready(model), "not ready"
metadata = client.get_model_metadata(model)

listed = [i["name"] for i in metadata["inputs"]]
assert spec["name"] in listed, listed
tensor = triton.InferInput(spec["name"], list(values.shape), "FP32")
tensor.set_data_from_numpy(values, binary_data=True)
outputs = [
    triton.InferRequestedOutput("probabilities", binary_data=True),
    triton.InferRequestedOutput("label", binary_data=True),
]
result = client.infer(model, [tensor], outputs=outputs, request_id="triton-1")
response = result.get_response()
print(
    json.dumps(
        {
            "id": response.get("id"),
            "probabilities": result.as_numpy("probabilities").tolist(),
            "labels": [v.decode() for v in result.as_numpy("label").ravel()],
            # Whether each output came as bytes: tritonclient reads both forms.
            "binary": [
                "binary_data_size" in o.get("parameters", {}) for o in response["outputs"]
            ],
        }
    )
)
