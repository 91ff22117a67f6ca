"""Emu2 tokenizer files and prompt placeholders (EMU2-SPEC §4.2, §4.3).

The reference path is the *slow* transformers 4.31 LlamaTokenizer (legacy), as the native Emu2 code uses.
"""
import json
import os
import re
import shutil

import sentencepiece as spm
from transformers import LlamaTokenizer

IMG_PLH = "[<IMG_PLH>]"
IMG_PLH_SHORT = "[]"  # how the published README renders the placeholder
VID_PLH = "[<VID_PLH>]"
BOI, EOI, IMAGE, GIMG = "[IMG]", "[/IMG]", "<image>", "[gIMG]"

_GROUNDING = ["<grounding>", "<phrase>", "</phrase>", "<object>", "</object>",
              "</delimiter_of_multi_objects/>", "<REC>"]


def emu2_added_tokens(model_version="base"):
    """Added tokens in insertion order; id = sentencepiece vocab size + index."""
    toks = ["[PAD]", "[IMG]", "[/IMG]", "<image>", "[gIMG]", "[/gIMG]", "[EOC]", "[VIDEO]"]
    toks += _GROUNDING
    toks += [f"<patch_index_{i:04d}>" for i in range(257)]
    if model_version == "chat":
        toks += ["[USER]", "[ASSISTANT]"]
    return toks


def _special(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_tokenizer_files(sp_model_path, out_dir, model_version="base"):
    """tokenizer.model + tokenizer_config.json + added_tokens.json + special_tokens_map.json.
    Returns the total vocab size (sp pieces + added tokens)."""
    os.makedirs(out_dir, exist_ok=True)
    dst = os.path.join(out_dir, "tokenizer.model")
    if os.path.abspath(sp_model_path) != os.path.abspath(dst):
        shutil.copyfile(sp_model_path, dst)
    n_sp = spm.SentencePieceProcessor(model_file=sp_model_path).get_piece_size()
    added = {t: n_sp + i for i, t in enumerate(emu2_added_tokens(model_version))}
    tok_cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": dict(_special("<s>"), __type="AddedToken"),
        "clean_up_tokenization_spaces": False,
        "eos_token": dict(_special("</s>"), __type="AddedToken"),
        "legacy": True,
        "model_max_length": 2048,
        "pad_token": "[PAD]",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": dict(_special("<unk>"), __type="AddedToken"),
    }
    stm = {"bos_token": _special("<s>"), "eos_token": _special("</s>"), "pad_token": "[PAD]",
           "unk_token": _special("<unk>")}
    for name, obj in (("tokenizer_config.json", tok_cfg), ("added_tokens.json", added),
                      ("special_tokens_map.json", stm)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return n_sp + len(added)


def load_tokenizer(tok_dir):
    """Slow LlamaTokenizer (legacy semantics); added tokens come from added_tokens.json."""
    tok = LlamaTokenizer.from_pretrained(tok_dir, legacy=True)
    want = os.path.join(tok_dir, "added_tokens.json")
    if os.path.exists(want):
        with open(want, encoding="utf-8") as f:
            for t, i in json.load(f).items():
                got = tok.convert_tokens_to_ids(t)
                if got != i:
                    raise ValueError(f"added token {t!r}: id {got} != {i}")
    return tok


_PLH_RE = re.compile(re.escape(IMG_PLH) + "|" + re.escape(IMG_PLH_SHORT))


def count_placeholders(text):
    return len(_PLH_RE.findall(text))


def expand_placeholders(text, n_images, n_query, n_videos_frames=0, v_query=None):
    """[<IMG_PLH>] (or [] ) -> [IMG] + <image>*n_query + [/IMG]; [<VID_PLH>] -> [IMG] + [gIMG]*v_query + [/IMG].
    n_images must equal the number of image placeholders exactly."""
    n = count_placeholders(text)
    if n != n_images:
        raise ValueError(f"prompt has {n} image placeholder(s) but {n_images} image(s) were given")
    img = BOI + IMAGE * n_query + EOI
    text = _PLH_RE.sub(lambda m: img, text)
    nv = text.count(VID_PLH)
    if nv != n_videos_frames:
        raise ValueError(f"prompt has {nv} video placeholder(s) but {n_videos_frames} frame(s) were given")
    if nv:
        text = text.replace(VID_PLH, BOI + GIMG * (v_query or n_query) + EOI)
    return text
