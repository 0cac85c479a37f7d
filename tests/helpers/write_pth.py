"""Writes a PyTorch state-dict checkpoint (.pth) the way `torch.save` does, without torch:
a zip archive holding `data.pkl` (a pickled OrderedDict of tensors rebuilt through
torch._utils._rebuild_tensor_v2 from persistent storages), one raw little-endian file per
storage under `data/`, and the `version` and `byteorder` records.

    python3 write_pth.py IN_DIR OUT.pth

IN_DIR holds `tensors.json` ([{"name", "shape", "dtype": "f32"|"i64", "file"}...]) and the raw
little-endian files it names. Used by the tests to make torchvision-format checkpoints; its
output was checked to load with torch 2.9's `torch.load(weights_only=True)` to the same values.
"""

import collections
import json
import os
import pickle
import sys
import types
import zipfile

# Stand-ins for the torch globals the pickle refers to: pickle writes a global by its module
# and name, so these only need to be importable under torch's names while pickling.
torch_module = types.ModuleType("torch")
utils_module = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):
    raise RuntimeError("only for pickling")


class FloatStorage:
    pass


class LongStorage:
    pass


_rebuild_tensor_v2.__module__ = "torch._utils"
FloatStorage.__module__ = LongStorage.__module__ = "torch"
utils_module._rebuild_tensor_v2 = _rebuild_tensor_v2
torch_module.FloatStorage = FloatStorage
torch_module.LongStorage = LongStorage
torch_module._utils = utils_module
sys.modules["torch"] = torch_module
sys.modules["torch._utils"] = utils_module


class Storage:
    def __init__(self, key, kind, numel):
        self.key, self.kind, self.numel = key, kind, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, step = [], 1
        for dim in reversed(self.shape):
            stride.insert(0, step)
            step *= dim
        return (_rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False,
                 collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def main():
    in_dir, out = sys.argv[1], sys.argv[2]
    entries = json.load(open(os.path.join(in_dir, "tensors.json")))
    state = collections.OrderedDict()
    blobs = []
    for key, entry in enumerate(entries):
        kind = FloatStorage if entry["dtype"] == "f32" else LongStorage
        width = 4 if entry["dtype"] == "f32" else 8
        data = open(os.path.join(in_dir, entry["file"]), "rb").read()
        numel = len(data) // width
        state[entry["name"]] = Tensor(Storage(str(key), kind, numel), entry["shape"])
        blobs.append((str(key), data))
    base = os.path.splitext(os.path.basename(out))[0]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        buffer = __import__("io").BytesIO()
        Pickler(buffer, protocol=2).dump(state)
        archive.writestr(f"{base}/data.pkl", buffer.getvalue())
        archive.writestr(f"{base}/byteorder", "little")
        for key, data in blobs:
            archive.writestr(f"{base}/data/{key}", data)
        archive.writestr(f"{base}/version", "3\n")


if __name__ == "__main__":
    main()
