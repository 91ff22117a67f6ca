"""Deterministic writers for golden cases: manifest.json (sorted keys) + tensors.safetensors.

Layout of one case directory:
  manifest.json        every tensor and id list described (name, shape, dtype, meaning, tolerance)
  tensors.safetensors  float32 (and uint8 for resized images) tensors, names as in the manifest
Consumers (the C engine's tests) read the safetensors with their own reader and the JSON with jansson.
"""
import hashlib
import json
import math
import os

import torch
from safetensors.torch import save_file

FORMAT_VERSION = 1

# Tolerance kinds used in manifests (documented in tests/reference/README.md).
TOL_EXACT = {"kind": "exact"}
TOL_PIXELS = {"kind": "max_abs", "value": 1e-6}
TOL_FP32 = {"kind": "max_abs_over_ref_max_abs", "value": 1e-4}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _scalar(x):
    return x is None or isinstance(x, (bool, int, float, str))


def _fmt_scalar(x):
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError("non-finite float in manifest")
        return json.dumps(x)
    return json.dumps(x, ensure_ascii=False)


def dumps(obj, indent=0):
    """JSON with sorted keys; lists of scalars on one line (token ids stay readable and compact)."""
    pad, pad1 = " " * indent, " " * (indent + 2)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(str(k))}: {dumps(obj[k], indent + 2)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(_scalar(x) for x in obj):
            return "[" + ", ".join(_fmt_scalar(x) for x in obj) + "]"
        return "[\n" + ",\n".join(pad1 + dumps(x, indent + 2) for x in obj) + "\n" + pad + "]"
    if _scalar(obj):
        return _fmt_scalar(obj)
    raise TypeError(f"cannot serialise {type(obj)}")


class Case:
    """Collects tensors and their descriptions for one golden case, then writes them."""

    def __init__(self, name):
        self.name = name
        self.tensors = {}
        self.entries = []

    def add(self, name, t, what, tolerance, **refs):
        if name in self.tensors:
            raise ValueError(f"duplicate tensor {name}")
        t = t.detach().cpu()
        if t.dtype != torch.uint8:
            t = t.to(torch.float32)
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name}: non-finite values")
        t = t.contiguous().clone()
        self.tensors[name] = t
        e = {"name": name, "shape": list(t.shape),
             "dtype": "U8" if t.dtype == torch.uint8 else "F32", "what": what, "tolerance": tolerance}
        e.update(refs)
        self.entries.append(e)
        return name

    def write(self, out_dir, manifest):
        os.makedirs(out_dir, exist_ok=True)
        for fn in os.listdir(out_dir):  # no stale files from earlier layouts
            os.remove(os.path.join(out_dir, fn))
        manifest = dict(manifest)
        manifest["format_version"] = FORMAT_VERSION
        manifest["tensors_file"] = "tensors.safetensors"
        manifest["tensors"] = sorted(self.entries, key=lambda e: e["name"])
        save_file(self.tensors, os.path.join(out_dir, "tensors.safetensors"), metadata={"case": self.name})
        with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
            f.write(dumps(manifest))
            f.write("\n")
