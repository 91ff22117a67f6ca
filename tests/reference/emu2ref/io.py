"""Save/load Emu2 checkpoints in the published layouts (EMU2-SPEC §7).

HF naming : model.visual.* / model.decoder.lm.* / project_up|down.weight, fused attn.qkv.bias = cat(q, 0, v)
native    : visual.* / decoder.lm.* / project_*, separate attn.q_bias and attn.v_bias
Formats   : safetensors (model.safetensors or model-0000k-of-0000n.safetensors + model.safetensors.index.json)
            torch .bin (pytorch_model.bin or pytorch_model-0000k-of-0000n.bin + pytorch_model.bin.index.json)
"""
import json
import os
import re
import shutil

import torch
from safetensors.torch import load_file, save_file

from .config import load_config, save_config
from .model import build_model

TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json")
_QB = re.compile(r"^(.*\.attn)\.q_bias$")


def _internal_sd(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith("rotary_emb.inv_freq")}


def hf_state_dict(model):
    """Internal (timm) names -> published HF names with fused qkv bias."""
    sd = _internal_sd(model)
    out = {}
    for k, v in sd.items():
        if k.endswith(".attn.v_bias"):
            continue
        m = _QB.match(k)
        if m:
            vb = sd[m.group(1) + ".v_bias"]
            out[m.group(1) + ".qkv.bias"] = torch.cat([v, torch.zeros_like(v), vb])
        else:
            out[k] = v
    return out


def native_state_dict(model):
    """Internal names minus the leading 'model.' (native EmuModel layout, q_bias/v_bias kept)."""
    return {(k[len("model."):] if k.startswith("model.") else k): v for k, v in _internal_sd(model).items()}


def to_internal(sd):
    """Accept HF or native names; return internal names (timm q_bias/v_bias)."""
    out = {}
    for k, v in sd.items():
        if k.endswith("rotary_emb.inv_freq"):
            continue
        if k.startswith("visual.") or k.startswith("decoder."):
            k = "model." + k
        if k.endswith(".attn.qkv.bias"):
            base = k[: -len(".qkv.bias")]
            n = v.shape[0] // 3
            if torch.count_nonzero(v[n:2 * n]):
                raise ValueError(f"{k}: non-zero k bias cannot be expressed by EVA (k bias is fixed to 0)")
            out[base + ".q_bias"] = v[:n].clone()
            out[base + ".v_bias"] = v[2 * n:].clone()
        else:
            out[k] = v
    return out


def _shards(sd, max_shard_bytes):
    shards, cur, size = [], {}, 0
    for k, v in sd.items():
        nb = v.numel() * v.element_size()
        if cur and max_shard_bytes is not None and size + nb > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = v
        size += nb
    if cur:
        shards.append(cur)
    return shards


def save_pretrained(model, cfg, out_dir, tokenizer_dir=None, fmt="safetensors", naming="hf",
                    dtype=torch.float32, max_shard_bytes=None):
    if fmt not in ("safetensors", "bin") or naming not in ("hf", "native"):
        raise ValueError("fmt must be safetensors|bin and naming hf|native")
    os.makedirs(out_dir, exist_ok=True)
    sd = hf_state_dict(model) if naming == "hf" else native_state_dict(model)
    # One private contiguous storage per tensor (no shared storages in the .bin pickles).
    sd = {k: v.detach().to(dtype).contiguous().clone() for k, v in sd.items()}
    cfg = dict(cfg)
    cfg["torch_dtype"] = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
    save_config(cfg, os.path.join(out_dir, "config.json"))
    shards = _shards(sd, max_shard_bytes)
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    n = len(shards)
    names = [f"{stem}.{ext}"] if n == 1 else [f"{stem}-{i + 1:05d}-of-{n:05d}.{ext}" for i in range(n)]
    weight_map = {}
    for name, shard in zip(names, shards):
        path = os.path.join(out_dir, name)
        if fmt == "safetensors":
            save_file(shard, path, metadata={"format": "pt"})
        else:
            torch.save(shard, path)
        for k in shard:
            weight_map[k] = name
    if n > 1:
        total = sum(v.numel() * v.element_size() for v in sd.values())
        with open(os.path.join(out_dir, f"{stem}.{ext}.index.json"), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
            f.write("\n")
    if tokenizer_dir is not None:
        for fn in TOKENIZER_FILES:
            src = os.path.join(tokenizer_dir, fn)
            if os.path.exists(src) and os.path.abspath(src) != os.path.abspath(os.path.join(out_dir, fn)):
                shutil.copyfile(src, os.path.join(out_dir, fn))
    return names


def _load_one(path):
    if path.endswith(".safetensors"):
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_state_dict(model_dir):
    """Raw tensors as stored (either format, sharded or not)."""
    for stem, ext in (("model", "safetensors"), ("pytorch_model", "bin")):
        idx = os.path.join(model_dir, f"{stem}.{ext}.index.json")
        single = os.path.join(model_dir, f"{stem}.{ext}")
        if os.path.exists(idx):
            with open(idx, encoding="utf-8") as f:
                wm = json.load(f)["weight_map"]
            sd = {}
            for fn in sorted(set(wm.values())):
                sd.update(_load_one(os.path.join(model_dir, fn)))
            missing = set(wm) - set(sd)
            if missing:
                raise ValueError(f"index lists tensors absent from shards: {sorted(missing)[:5]}")
            return sd
        if os.path.exists(single):
            return _load_one(single)
    raise FileNotFoundError(f"no model.safetensors / pytorch_model.bin (or index) in {model_dir}")


def load_pretrained(model_dir, dtype=torch.float32):
    """-> (Emu2Model in eval mode, cfg dict). Accepts HF or native naming, both formats, sharded or not."""
    cfg = load_config(os.path.join(model_dir, "config.json"))
    model = build_model(cfg)
    sd = {k: v.to(torch.float32) for k, v in to_internal(read_state_dict(model_dir)).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        raise ValueError(f"checkpoint mismatch: missing {missing[:5]} unexpected {unexpected[:5]}")
    model.to(dtype)
    model.eval()
    return model, cfg
