#!/usr/bin/env python3
"""Tokenizer goldens: token ids and decoded texts from transformers 4.31's slow LlamaTokenizer.

Writes tests/data/tokenizer/goldens.json (compact), read by tests/unit/test_tokenizer_goldens.c.

Sets:
  llama-base / llama-chat: the LLaMA tokenizer.model of ../shared/fixtures/llama-tokenizer with Emu2's
      added tokens added as Emu2's native code does (GH:emu/lm.py: add_special_tokens with pad/bos/eos
      and additional_special_tokens; + [USER]/[ASSISTANT] for chat). n_query 64 / 256.
  tiny: models/emu2-tiny-digits (LlamaTokenizer.from_pretrained of the folder, added_tokens.json), when
      that folder exists.
  tiny-native-chat: only the tiny tokenizer.model, Emu2's tokens added the native way (ids from 384).
  tiny-variant: the tiny tokenizer.model + added_tokens.json with other config files ("files" in the set):
      AddedTokens with lstrip/rstrip, plain-string specials, add_eos_token, clean_up_tokenization_spaces.
Sets with "files" are built in a fresh folder: tokenizer.model (+ the files named in "copy") from the
source folder, plus "files" written verbatim; the C test rebuilds the same folder.
Per text: ids = BOS + tokens after image placeholder expansion (emu2ref's regex), and, for texts
with placeholders, raw = tokens of the unexpanded text without BOS. Decode cases: id lists and
decode(skip_special_tokens=True / False).

Run: /work/venv-ref/bin/python tests/reference/gen_tokenizer_goldens.py [--shared ../shared]
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import sentencepiece  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaTokenizer  # noqa: E402

from emu2ref.tokenizer import (BOI, EOI, IMAGE, _PLH_RE, emu2_added_tokens, count_placeholders,  # noqa: E402
                               load_tokenizer)

SYSTEM = "You are a helpful assistant, dedicated to delivering comprehensive and meticulous responses."
SYSTEM_GRD = "You are a helpful assistant, dedicated to provide concise and efficient answers."
FEWSHOT = ("[<IMG_PLH>][red, white, 3, bottom left].[<IMG_PLH>][yellow, white, 2, top left]."
           "[<IMG_PLH>][green, black, 4, bottom right][<IMG_PLH>]")
FEWSHOT_SHORT = "[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]"

# Python's str.isspace() characters: every one must be stripped next to special tokens.
PY_SPACES = ["\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ", "\x85", "\xa0",
             "\u1680", "\u2000", "\u2005", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
NOT_SPACES = ["\u200b", "\ufeff", "\u180e", "\u2060", "\u00ad"]


def native_emu2_tokenizer(sp_dir, model_version):
    """What GH:emu/lm.py builds: LLaMA tokenizer + add_special_tokens(pad/bos/eos/additional)."""
    tok = LlamaTokenizer.from_pretrained(sp_dir, legacy=True)
    added = emu2_added_tokens(model_version)
    assert added[0] == "[PAD]"
    n = tok.add_special_tokens(dict(pad_token="[PAD]", bos_token="<s>", eos_token="</s>",
                                    additional_special_tokens=added[1:]))
    assert n == len(added), (n, len(added))
    return tok


def fixed_texts():
    t = []
    t += ["", " ", "  ", "\n", "\t", "Describe the image in details:",
          "[<IMG_PLH>]Describe the image in details:", "[]Describe the image in details:",
          "[] Describe the image in details:", " [<IMG_PLH>] Describe the image in details: ",
          FEWSHOT, FEWSHOT_SHORT, FEWSHOT.replace("top left].", "top right]."),
          "[<IMG_PLH>]", "[]", "[][]", "[<IMG_PLH>][<IMG_PLH>]", "[] []", "a[]b", "a [] b", "[[]]", "[[<IMG_PLH>]]",
          "[<IMG_PLH>[]]", "[<IMG_PLH>", "<IMG_PLH>]", "[ ]", "[]]", "[[]", "[<IMG_PLH> ]", "[<img_plh>]",
          "[<VID_PLH>]", "[/VIDEO]", "[VIDEO][<VID_PLH>][/VIDEO]",
          "[IMG", "IMG]", "<image", "image>", "<image >", "< image>", "[/IMG", "[gIMG", "<patch_index_0257>",
          "<patch_index_>", "<patch_index_00001>", "<patch_index_0001", "<patch_index_1>", "[USER", "[ASSISTANT",
          "[user]", "[Assistant]", "<S>", "< s>", "</ s>", "<unk", "<pad>", "[pad]", "<grounding", "</phrase",
          "<<image>>", "[[IMG]]", "<image><image>", "[IMG][/IMG]", "[IMG] [/IMG]", "[IMG]\n[/IMG]",
          "<s>", "</s>", "<unk>", "[PAD]", "<s><s>", "</s></s>", "a<s>b", "a <s> b", "a </s> b", "a <unk> b",
          "a<unk>b", "  <unk>  ", "x <unk>[IMG] y", "[PAD] [PAD]", "hello</s>", "</s>[USER]: hi",
          "<grounding><phrase>a dog</phrase><object><patch_index_0012><patch_index_0255></object>",
          "<phrase> the cat </phrase> <object> <patch_index_0000> <patch_index_0256> </object>",
          "<REC>where is the dog?", "</delimiter_of_multi_objects/>", "x</delimiter_of_multi_objects/>y",
          "[EOC]", "[gIMG][/gIMG]", "[VIDEO]", " [VIDEO] frames ",
          # chat templates (EMU2-SPEC §5): native and HF
          f"{SYSTEM} [USER]: [<IMG_PLH>]describe the image in details: [ASSISTANT]:",
          f"{SYSTEM} [USER]: []describe the image in details: [ASSISTANT]:",
          f"{SYSTEM} [USER]: What is in this picture? [ASSISTANT]: A dog.</s>[USER]: [<IMG_PLH>]And here? "
          f"[ASSISTANT]:",
          f"{SYSTEM_GRD} [USER]: [<IMG_PLH>]Where is the cat? [ASSISTANT]:<grounding>",
          "[USER]: [<IMG_PLH>]Describe the image in details:[ASSISTANT]:",
          "[USER]: hello[ASSISTANT]:", "[USER]:hello [ASSISTANT]: hi", " [USER]: x [ASSISTANT]: y ",
          f"{SYSTEM} [USER]: [VIDEO][<IMG_PLH>][<IMG_PLH>]what happens? [ASSISTANT]:",
          # plain text
          "Hello world", "hello world", "Hello, world!", "  leading spaces", "trailing spaces   ",
          "multiple   spaces   inside", "tabs\tand\ttabs", "new\nlines\n\nand\r\nwindows", "\n\nleading newlines",
          "trailing newline\n", "a  b   c    d", " x", "x ", "   ", "\t\t", "\n \n",
          "The quick brown fox jumps over the lazy dog.", "1234567890", "3.14159 2.71828 -1e-6",
          "[red, white, 3, bottom left]", "[blue, black, 1, top left]", "What color is the circle?",
          "A photo of a squirrel eating a nut.", "emu", "Emu2", "EMU2-Chat",
          # unicode
          "café naïve résumé", "Ünïcödé", "ß ẞ", "中文测试", "日本語のテキスト", "한국어 텍스트",
          "Привет мир", "مرحبا بالعالم", "שלום עולם", "हिन्दी", "ไทย", "Ελληνικά",
          "emoji 😀🎉👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "☃ snowman ❄", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠜎𠜱𠝹 rare CJK",
          "\u00e9 vs e\u0301", "\u200b zero width", "\ufeffBOM", "tab\u3000ideographic", "nbsp\u00a0here",
          "control \x01\x02\x7f chars", "\u2028line sep", "math ∑∫√∞≠", "♠♥♦♣", "»quotes« “smart” ‘single’",
          "中文[IMG]测试", "😀[<IMG_PLH>]😀", "é<image>é", "<image>中", "\u3000[IMG]\u3000", "\u00a0<s>\u00a0",
          "\x85[PAD]\x85", "\u200b[IMG]\u200b", "\ufeff[/IMG]\ufeff",
          "Describe this image in one sentence.\n[<IMG_PLH>]",
          "Q: What is shown? A:", "Question: [] what is this? Answer:",
          "▁ already spm underline", "▁▁▁", "a▁b", "<0x41>", "<0xE4>", "<unk><unk>", "⁇",
          ]
    # every added token alone, with spaces, and between words
    for tok in emu2_added_tokens("chat"):
        t += [tok, f" {tok} ", f"a {tok} b", f"a{tok}b"]
    for sp in PY_SPACES + NOT_SPACES:
        t += [f"x{sp}[IMG]{sp}y", f"{sp}hello{sp}", f"a{sp}<s>{sp}b", f"a{sp}<unk>{sp}b", f"a{sp}[]{sp}b"]
    long_par = ("Emu2 is a generative multimodal model with 37 billion parameters, trained on large-scale "
                "multimodal sequences with a unified autoregressive objective. ") * 12
    t += [long_par, long_par + "[<IMG_PLH>]" + long_par, "word " * 500, "x" * 3000, "😀" * 300, "中" * 700,
          "  ".join(["spaced"] * 100), "\n".join(["line %d" % i for i in range(100)])]
    return t


FRAGMENTS = ["hello", "world", " ", "  ", "\n", "\t", ".", ",", ":", "?", "!", "[", "]", "<", ">", "/",
             "[IMG]", "[/IMG]", "<image>", "[USER]", "[ASSISTANT]", "<s>", "</s>", "<unk>", "[PAD]",
             "[<IMG_PLH>]", "[]", "<patch_index_0042>", "<phrase>", "</phrase>", "<grounding>", "😀", "中文",
             "é", "\u3000", "\u00a0", "Describe", "the image", "in details", "123", "IMG", "image", "PLH",
             "[<", ">]", "▁", "\u200b", "ü", "<0x41>", "#", "'", '"']


def random_texts(rng, n):
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        out.append("".join(rng.choice(FRAGMENTS) for _ in range(k)))
    return out


def random_id_lists(rng, sp_size, n_added, specials, n):
    lists = []
    for _ in range(n):
        k = rng.randint(1, 24)
        ids = []
        for _ in range(k):
            r = rng.random()
            if r < 0.40:
                ids.append(rng.randrange(4, sp_size))
            elif r < 0.55:
                # byte pieces (LLaMA: 3..258), without <0x00>: a C string cannot hold the NUL it decodes to
                ids.append(rng.randrange(4, min(259, sp_size)))
            elif r < 0.70:
                ids.append(rng.choice(specials))
            elif r < 0.90 and n_added:
                ids.append(sp_size + rng.randrange(n_added))
            else:
                ids.append(rng.choice([29871, 259, 13]) if sp_size > 29871 else rng.randrange(sp_size))
        lists.append(ids)
    return lists


VARIANT_FILES = {
    "tokenizer_config.json": json.dumps({
        "add_bos_token": True, "add_eos_token": True, "clean_up_tokenization_spaces": True, "legacy": True,
        "tokenizer_class": "LlamaTokenizer", "model_max_length": 2048,
        "unk_token": {"__type": "AddedToken", "content": "<unk>", "lstrip": True, "rstrip": False,
                      "normalized": True, "single_word": False}}),
    "special_tokens_map.json": json.dumps({
        "bos_token": "<s>",
        "eos_token": {"content": "</s>", "lstrip": False, "rstrip": True, "normalized": True, "single_word": False},
        "pad_token": "[PAD]",
        "additional_special_tokens": [
            "[IMG]", "[/IMG]", "<image>",
            {"content": "<REC>", "lstrip": True, "rstrip": False, "normalized": True, "single_word": False},
            {"content": "[VIDEO]", "lstrip": False, "rstrip": True, "normalized": True, "single_word": False}]}),
}


def build_folder(src, copy, files):
    d = tempfile.mkdtemp(prefix="emu2_tok_gold_")
    for name in ["tokenizer.model"] + list(copy):
        shutil.copyfile(os.path.join(src, name), os.path.join(d, name))
    for name, text in files.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(text)
    return d


def make_set(name, model_ref, tok, texts, n_query, rng, model_version=None):
    sp_size = tok.sp_model.get_piece_size()
    added = [tok.convert_ids_to_tokens(i) for i in range(sp_size, len(tok))]
    enc, raw = [], {}
    for i, text in enumerate(texts):
        n = count_placeholders(text)
        # image placeholders only (as emu2ref.expand_placeholders; video placeholders stay text)
        expanded = _PLH_RE.sub(lambda m: BOI + IMAGE * n_query + EOI, text)
        ids = tok(expanded).input_ids
        enc.append(ids)
        if n:
            raw[str(i)] = tok.encode(text, add_special_tokens=False)
    # decode cases: encodings of some prompts (with BOS), tails without BOS, random lists
    dec_lists = [ids for ids in enc[:200] if len(ids) < 400]
    dec_lists += [ids[1:] for ids in enc[200:260] if len(ids) < 400]
    specials = [tok.unk_token_id, tok.bos_token_id, tok.eos_token_id]
    # <0x00> decodes to NUL, which a C string cannot hold: kept out of the decode cases
    nul = tok.sp_model.piece_to_id("<0x00>")
    dec_lists += [[i for i in ids if i != nul] or [5]
                  for ids in random_id_lists(rng, sp_size, len(added), specials, 250)]
    dec_lists += [[], [1], [2], [0], [1, 2], [tok.sp_model.piece_to_id("▁")]]
    decode = [[ids, tok.decode(ids, skip_special_tokens=True), tok.decode(ids, skip_special_tokens=False)]
              for ids in dec_lists]
    out = {"name": name, "model": model_ref, "n_query": n_query, "sp_size": sp_size, "vocab_size": len(tok),
           "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id, "pad_id": tok.pad_token_id,
           "add_bos": tok.add_bos_token, "add_eos": tok.add_eos_token,
           "added_tokens": added, "ids": enc, "raw": raw, "decode": decode}
    if model_version:
        out["model_version"] = model_version
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "tokenizer", "goldens.json"))
    args = ap.parse_args()
    rng = random.Random(20240601)
    texts = fixed_texts() + random_texts(rng, 300)
    sets = []
    llama = os.path.join(args.shared, "fixtures", "llama-tokenizer")
    for version, nq in (("base", 64), ("chat", 256)):
        tok = native_emu2_tokenizer(llama, version)
        sets.append(make_set(f"llama-{version}", "shared:fixtures/llama-tokenizer", tok, texts, nq,
                             random.Random(7 + nq), version))
    tiny = os.path.join(ROOT, "models", "emu2-tiny-digits")
    if os.path.exists(os.path.join(tiny, "tokenizer.model")):
        nq = 4
        cfg = os.path.join(tiny, "config.json")
        if os.path.exists(cfg):
            with open(cfg) as f:
                nq = json.load(f).get("vision_config", {}).get("n_query", nq)
        sets.append(make_set("tiny", "repo:models/emu2-tiny-digits", load_tokenizer(tiny), texts, nq,
                             random.Random(11)))
        d = build_folder(tiny, [], {})
        s = make_set("tiny-native-chat", "repo:models/emu2-tiny-digits", native_emu2_tokenizer(d, "chat"), texts,
                     nq, random.Random(12), "chat")
        s["copy"], s["files"] = [], {}
        sets.append(s)
        shutil.rmtree(d)
        d = build_folder(tiny, ["added_tokens.json"], VARIANT_FILES)
        s = make_set("tiny-variant", "repo:models/emu2-tiny-digits", LlamaTokenizer.from_pretrained(d, legacy=True),
                     texts, nq, random.Random(13))
        s["copy"], s["files"] = ["added_tokens.json"], VARIANT_FILES
        sets.append(s)
        shutil.rmtree(d)
    else:
        print("note: models/emu2-tiny-digits has no tokenizer.model; tiny set skipped", file=sys.stderr)
    doc = {"generator": "tests/reference/gen_tokenizer_goldens.py",
           "versions": {"transformers": transformers.__version__, "sentencepiece": sentencepiece.__version__},
           "texts": texts, "sets": sets}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}: {len(texts)} texts, sets {[s['name'] for s in sets]}, "
          f"{os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
