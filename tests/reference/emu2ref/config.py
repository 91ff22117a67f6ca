"""Emu2 config.json (published format) <-> dicts and a transformers LlamaConfig."""
import json
import math

from transformers import LlamaConfig

# Key order of the published Emu2 config.json (fixtures/emu2-configs/Emu2/config.json).
_VISION_DEFAULTS = {
    "drop_path_rate": 0,
    "eva_model_name": "eva-clip-E-14-plus",
    "head_width": 112,
    "image_size": 448,
    "intermediate_size": 15360,
    "layer_norm_eps": 1e-06,
    "layers": 64,
    "mlp_ratio": 8.571428571428571,
    "n_query": 64,
    "patch_size": 14,
    "postnorm": True,
    "qkv_bias": True,
    "v_query": 64,
    "width": 1792,
    "xattn": True,
}


def make_config(*, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size,
                vision, model_version="base", max_position_embeddings=2048, rms_norm_eps=1e-6,
                pad_token_id=None, name="emu2", torch_dtype="float32"):
    """Build a config dict in the exact layout of the published Emu2 config.json.

    vision: dict with image_size, patch_size, width, layers, head_width, intermediate_size, n_query,
    v_query (optional), layer_norm_eps (optional).
    """
    v = dict(_VISION_DEFAULTS)
    v.update(vision)
    v["mlp_ratio"] = v["intermediate_size"] / v["width"]
    v.setdefault("v_query", v["n_query"])
    if "v_query" not in vision:
        v["v_query"] = v["n_query"]
    v["xattn"] = model_version != "chat"
    v = {k: v[k] for k in sorted(v)}
    n_added = 274 if model_version == "chat" else 272
    cfg = {
        "_name_or_path": name,
        "architectures": ["EmuForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_emu.EmuConfig",
            "AutoModelForCausalLM": "modeling_emu.EmuForCausalLM",
        },
        "bos_token_id": 1,
        "d_model": v["width"],
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": max_position_embeddings,
        "model_version": model_version,
        "num_attention_heads": num_attention_heads,
        "num_hidden_layers": num_hidden_layers,
        "num_key_value_heads": num_attention_heads,
        "pad_token_id": pad_token_id if pad_token_id is not None else vocab_size - n_added,
        "pretraining_tp": 1,
        "rms_norm_eps": rms_norm_eps,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": torch_dtype,
        "transformers_version": "4.31.0",
        "use_cache": True,
        "vision_config": v,
        "vocab_size": vocab_size,
    }
    check_config(cfg)
    return cfg


def grid_size(cfg):
    v = cfg["vision_config"]
    return v["image_size"] // v["patch_size"]


def pool_kernel(cfg, n_query=None):
    """k = int(grid // sqrt(n_query)) exactly as the published encode_image computes it."""
    n = cfg["vision_config"]["n_query"] if n_query is None else n_query
    return int(grid_size(cfg) // math.sqrt(n))


def check_config(cfg):
    v = cfg["vision_config"]
    if v["image_size"] % v["patch_size"]:
        raise ValueError("image_size must be a multiple of patch_size")
    g = grid_size(cfg)
    for key in ("n_query", "v_query"):
        r = math.isqrt(v[key])
        if r * r != v[key] or g % r:
            raise ValueError(f"{key}={v[key]} must be a square whose root divides the grid {g}")
    if v["width"] % v["head_width"]:
        raise ValueError("vision width must be a multiple of head_width")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError("hidden_size must be a multiple of num_attention_heads")
    if cfg.get("d_model", v["width"]) != v["width"]:
        raise ValueError("d_model must equal vision_config.width")
    if float(cfg.get("rope_theta", 10000.0)) != 10000.0 or cfg.get("rope_scaling") is not None:
        raise ValueError("transformers 4.31 LLaMA only expresses rope_theta 10000 without scaling")
    if not v.get("postnorm", True) or not v.get("qkv_bias", True):
        raise ValueError("only the post-norm, q/v-bias EVA of Emu2 is supported")


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    check_config(cfg)
    return cfg


def save_config(cfg, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def llama_config_from(cfg):
    return LlamaConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
        hidden_act=cfg.get("hidden_act", "silu"),
        max_position_embeddings=cfg.get("max_position_embeddings", 2048),
        initializer_range=cfg.get("initializer_range", 0.02),
        rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
        use_cache=True,
        pad_token_id=cfg.get("pad_token_id"),
        bos_token_id=cfg.get("bos_token_id", 1),
        eos_token_id=cfg.get("eos_token_id", 2),
        pretraining_tp=cfg.get("pretraining_tp", 1),
        tie_word_embeddings=False,
        rope_scaling=None,
    )
