"""Writes the model folders of the llama.cpp comparison from one Emu2 model folder (run with the
reference kit's python: torch + safetensors + tests/reference/emu2ref).

    python tests/bench/llama_cpp/export_models.py SRC_DIR OUT_DIR [--tokenizer SP_MODEL]

Every folder holds the same weight values: the source rounded to bf16 (the published checkpoints and
the random bench model are bf16 already, so for them nothing changes):
  OUT_DIR/emu2-bf16   the Emu2 folder in bf16 (the source's weights linked when they already are bf16)
  OUT_DIR/emu2-f32    the same values stored as f32
  OUT_DIR/hf-llama    the decoder alone as a plain LLaMA checkpoint (LlamaForCausalLM names and
                      config.json, bf16, the tokenizer files): what llama.cpp's converter reads
Tokenizer files come from SRC_DIR when it has them, else are made from SP_MODEL (the LLaMA
SentencePiece model) plus Emu2's added tokens. A folder that exists already is kept (a cache).
"""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "reference"))

TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json")
DECODER_PREFIX = "decoder.lm."  # Emu2 names: [model.]decoder.lm.{model.*, lm_head.weight}
LLAMA_KEYS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
              "num_key_value_heads", "rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings",
              "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "hidden_act")


def weight_files(src):
    index = os.path.join(src, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            return sorted({os.path.join(src, v) for v in json.load(f)["weight_map"].values()})
    single = os.path.join(src, "model.safetensors")
    if not os.path.exists(single):
        sys.exit(f"export_models: {src} has no model.safetensors (nor an index): only safetensors folders are read")
    return [single]


def load_bf16(src):
    sd = {}
    for path in weight_files(src):
        with safe_open(path, "pt") as f:
            for k in f.keys():
                sd[k] = f.get_tensor(k).to(torch.bfloat16).contiguous()
    return sd


def source_is_bf16(src):
    for path in weight_files(src):
        with safe_open(path, "pt") as f:
            if any(f.get_slice(k).get_dtype() not in ("BF16",) for k in f.keys()):
                return False
    return True


def read_config(src):
    with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def write_json(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def copy_tokenizer(src, dst, sp_model):
    if os.path.exists(os.path.join(src, "tokenizer.model")):
        for fn in TOKENIZER_FILES:
            if os.path.exists(os.path.join(src, fn)):
                shutil.copyfile(os.path.join(src, fn), os.path.join(dst, fn))
        return
    if not sp_model or not os.path.exists(sp_model):
        sys.exit(f"export_models: {src} has no tokenizer.model and no --tokenizer SentencePiece model was given")
    from emu2ref.tokenizer import write_tokenizer_files  # noqa: E402 (needs transformers: only here)
    write_tokenizer_files(sp_model, dst, read_config(src).get("model_version", "base"))


def finish(tmp, out):
    os.replace(tmp, out)  # only a complete folder ever has the final name
    print(f"export_models: wrote {out}")


def write_emu2(src, out, sd, dtype, sp_model, link_weights):
    if os.path.exists(os.path.join(out, "config.json")):
        return
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    cfg = read_config(src)
    cfg["torch_dtype"] = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    write_json(cfg, os.path.join(tmp, "config.json"))
    if link_weights:
        for path in weight_files(src):
            os.symlink(os.path.abspath(path), os.path.join(tmp, os.path.basename(path)))
        index = os.path.join(src, "model.safetensors.index.json")
        if os.path.exists(index):
            shutil.copyfile(index, os.path.join(tmp, os.path.basename(index)))
    else:
        save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, os.path.join(tmp, "model.safetensors"),
                  metadata={"format": "pt"})
    copy_tokenizer(src, tmp, sp_model)
    finish(tmp, out)


def write_llama(src, out, sd, sp_model):
    if os.path.exists(os.path.join(out, "config.json")):
        return
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    dec = {}
    for k, v in sd.items():
        if DECODER_PREFIX in k:
            dec[k.split(DECODER_PREFIX, 1)[1]] = v
    need = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    if not need <= dec.keys():
        sys.exit(f"export_models: {src}: decoder tensors missing: {sorted(need - dec.keys())}")
    save_file(dec, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    cfg = read_config(src)
    llama = {k: cfg[k] for k in LLAMA_KEYS if k in cfg}
    llama.setdefault("num_key_value_heads", llama["num_attention_heads"])
    llama.update(architectures=["LlamaForCausalLM"], model_type="llama", tie_word_embeddings=False,
                 torch_dtype="bfloat16", attention_bias=False)
    write_json(llama, os.path.join(tmp, "config.json"))
    copy_tokenizer(src, tmp, sp_model)
    n = sum(v.numel() for v in dec.values())
    print(f"export_models: decoder {n / 1e9:.3f} B parameters")
    finish(tmp, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--tokenizer", help="SentencePiece model for a source folder without tokenizer files")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    dirs = {n: os.path.join(a.out, n) for n in ("emu2-bf16", "emu2-f32", "hf-llama")}
    if all(os.path.exists(os.path.join(d, "config.json")) for d in dirs.values()):
        print(f"export_models: {a.out}: already there")
        return
    sd = load_bf16(a.src)
    write_emu2(a.src, dirs["emu2-bf16"], sd, torch.bfloat16, a.tokenizer, link_weights=source_is_bf16(a.src))
    write_emu2(a.src, dirs["emu2-f32"], sd, torch.float32, a.tokenizer, link_weights=False)
    write_llama(a.src, dirs["hf-llama"], sd, a.tokenizer)


if __name__ == "__main__":
    main()
