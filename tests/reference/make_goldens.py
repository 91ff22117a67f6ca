"""Golden tensors and token ids for the C engine: cases tiny, vis448, chat.

  python tests/reference/make_goldens.py [--cases tiny,vis448,chat] [--fixtures DIR]

vis448 and chat first (re)write their random-weight models under tests/models/ in a published layout,
then every case loads its model back from disk (weights upcast from the stored dtype to float32) and
computes in float32 with one thread. Output: tests/reference/goldens/<case>/{manifest.json,tensors.safetensors}.
See tests/reference/README.md for the manifest schema and the tolerances.
"""
import argparse
import os
import shutil
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import emu2ref as E  # noqa: E402
from emu2ref.generate import prepare  # noqa: E402
from golden_io import Case, TOL_EXACT, TOL_FP32, TOL_PIXELS, sha256_file  # noqa: E402

MAX_NEW_RANDOM = 24
# Float32 pixels cost 2.4 MB per 448x448 image: store them only for images at most this big
# (the exact uint8 resize is always stored, the float32 tensor is a fixed function of it).
F32_PIXELS_MAX_SIDE = 224

TOLERANCE_DOC = {
    "exact": "bitwise / id-for-id equality",
    "max_abs": "max |got - ref| <= value",
    "max_abs_over_ref_max_abs": "max |got - ref| <= value * max |ref| (over the whole tensor)",
    "ids": "token ids (input_ids, attention_mask, generated ids, eos flags) must be identical",
    "sequence_score": "beam sequence_score: |got - ref| <= 1e-4 * max(1, |ref|)",
}

GEN_MODES = (
    {"mode": "greedy", "num_beams": 1, "length_penalty": 1.0},
    {"mode": "beam", "num_beams": 5, "length_penalty": -1.0},
    {"mode": "beam", "num_beams": 5, "length_penalty": 2.0},
)


def default_fixtures():
    env = os.environ.get("EMU2_FIXTURES")
    if env:
        return env
    local = os.path.join(REPO, "tests", "data", "fixtures")
    return local if os.path.isdir(os.path.join(local, "seed-images")) else "/work/shared/fixtures"


def rel(path):
    return os.path.relpath(os.path.abspath(path), REPO)


# ---------------------------------------------------------------------------------------------
# Random-weight models written in the published layouts

def make_rand_vis448(fix, out_dir, calib):
    """Real Emu2 base geometry (448/14 -> 1025 tokens, n_query 64, vocab 32272), small widths.
    Published Emu2 layout: sharded torch .bin + index, native names (q_bias/v_bias), bf16 storage."""
    cfg = E.make_config(hidden_size=32, intermediate_size=88, num_hidden_layers=2, num_attention_heads=2,
                        vocab_size=32272, pad_token_id=32000, model_version="base", name="rand-vis448",
                        vision=dict(image_size=448, patch_size=14, width=64, layers=3, head_width=32,
                                    intermediate_size=160, n_query=64))
    model = round_to_storage(E.randomize_(E.build_model(cfg, seed=448), seed=4481), torch.bfloat16)
    top, mix = tie_eos_to_frequent_tokens(model, cfg, fix, calib, seed=4482, storage=torch.bfloat16)
    _write_model(model, cfg, fix, out_dir, "base", fmt="bin", naming="native", dtype=torch.bfloat16,
                 max_shard_bytes=1_500_000)
    return {"build_seed": 448, "randomize_seed": 4481, "eos_row": {"tokens": top, "mix": mix, "noise_seed": 4482},
            "layout": "torch .bin shards + pytorch_model.bin.index.json, native names (attn.q_bias/v_bias), bf16"}


def make_rand_chat(fix, out_dir, calib):
    """Emu2-Chat geometry (448/14, n_query 256 i.e. pool k=2, v_query 64, vocab 32274 with [USER]/[ASSISTANT]).
    HF layout: safetensors, HF names (fused attn.qkv.bias), bf16 storage as Emu2-Gen's safetensors."""
    cfg = E.make_config(hidden_size=16, intermediate_size=44, num_hidden_layers=2, num_attention_heads=2,
                        vocab_size=32274, pad_token_id=32000, model_version="chat", name="rand-chat",
                        vision=dict(image_size=448, patch_size=14, width=32, layers=2, head_width=16,
                                    intermediate_size=96, n_query=256, v_query=64))
    model = round_to_storage(E.randomize_(E.build_model(cfg, seed=256), seed=2561), torch.bfloat16)
    top, mix = tie_eos_to_frequent_tokens(model, cfg, fix, calib, seed=2562, storage=torch.bfloat16)
    _write_model(model, cfg, fix, out_dir, "chat", fmt="safetensors", naming="hf", dtype=torch.bfloat16,
                 max_shard_bytes=None)
    return {"build_seed": 256, "randomize_seed": 2561, "eos_row": {"tokens": top, "mix": mix, "noise_seed": 2562},
            "layout": "single model.safetensors, HF names (fused attn.qkv.bias), bf16"}


@torch.no_grad()
def round_to_storage(model, dtype):
    """Round every parameter to the storage dtype (kept in float32), so that the EOS calibration below sees
    exactly the model that is written and reloaded."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return model


@torch.no_grad()
def tie_eos_to_frequent_tokens(model, cfg, fix, calib, seed, storage, k=2, noise=0.3):
    """A random model almost never emits EOS, which leaves beam search's finished-hypothesis logic and
    length_penalty untested. So set lm_head[EOS] = mix * (sum of the rows of the k tokens most often
    produced greedily on the calibration prompts) + noise: EOS then competes with the model's favourite
    tokens. mix is picked from a fixed grid to make as many greedy outputs as possible stop on EOS in the
    middle (not at the first step, not never). Returns (tokens, mix)."""
    eos = cfg.get("eos_token_id", 2)
    with tempfile.TemporaryDirectory() as tok_dir:
        E.write_tokenizer_files(os.path.join(fix, "llama-tokenizer", "tokenizer.model"), tok_dir,
                                cfg["model_version"])
        tok = E.load_tokenizer(tok_dir)

        def greedy_rows():
            rows = []
            for prompts, images, chat in calib:
                rows += E.generate(model, tok, cfg, prompts, images, num_beams=1,
                                   max_new_tokens=MAX_NEW_RANDOM, chat=chat)["ids"]
            return rows

        counts = {}
        for row in greedy_rows():
            for t in row:
                counts[t] = counts.get(t, 0) + 1
        top = sorted(counts, key=lambda t: (-counts[t], t))[:k]
        w = model.lm.lm_head.weight
        g = torch.Generator().manual_seed(seed)
        base = w[top].sum(0).clone()
        rnd = noise * float(w.std()) * torch.randn(w.shape[1], generator=g)
        best = None
        for i in range(8, 21):  # mix 0.40 .. 1.00
            mix = i / 20
            w[eos] = (mix * base + rnd).to(storage).to(torch.float32)
            mid = sum(1 for r in greedy_rows() if 1 <= len(r) < MAX_NEW_RANDOM)
            if best is None or mid > best[0]:
                best = (mid, mix)
        w[eos] = (best[1] * base + rnd).to(storage).to(torch.float32)
    return top, best[1]


def _write_model(model, cfg, fix, out_dir, version, **kw):
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    with tempfile.TemporaryDirectory() as tok_dir:
        vocab = E.write_tokenizer_files(os.path.join(fix, "llama-tokenizer", "tokenizer.model"), tok_dir, version)
        if vocab != cfg["vocab_size"]:
            raise ValueError(f"tokenizer vocab {vocab} != config vocab {cfg['vocab_size']}")
        E.save_pretrained(model, cfg, out_dir, tokenizer_dir=tok_dir, **kw)


# ---------------------------------------------------------------------------------------------
# Cases

def seed(name, fix):
    return os.path.join(fix, "seed-images", name)


FEW_SHOT = ("[<IMG_PLH>][red, white, 3, bottom left].[<IMG_PLH>][yellow, white, 2, top left]."
            "[<IMG_PLH>][green, black, 4, bottom right][<IMG_PLH>]")


def case_specs():
    """Per case: images (name -> seed file) and runs (a batch of prompts each; images per prompt by name)."""
    circles = {"red3": "red_white_3_bottom_left.jpg", "yellow2": "yellow_white_2_top_right.jpg",
               "green4": "green_black_4_bottom_right.jpg", "blue1": "blue_black_1_top_left.jpg"}
    photos = {"emu": "emu.png", "book1": "book1.jpg"}  # RGBA PNG and a portrait JPEG
    native = E.chat_prompt_native
    return {
        "tiny": {
            # EMU2_TINY_DIR: use a frozen copy (e.g. while train_tiny.py keeps rewriting the shipped folder)
            "model_dir": os.path.abspath(os.environ.get("EMU2_TINY_DIR")
                                         or os.path.join(REPO, "models", "emu2-tiny-digits")),
            "images": circles,
            "eva_images": ("blue1", "red3"),
            "max_new_tokens": 32,
            "runs": [
                {"id": "describe_blue1", "template": "none",
                 "prompts": ["[<IMG_PLH>]"], "images": [["blue1"]], "truth": ["[blue, black, 1, top left]"]},
                {"id": "describe_sentence_red3", "template": "none",
                 "prompts": ["[<IMG_PLH>]Describe the image in details:"], "images": [["red3"]],
                 "truth": ["A red circle with a white 3 in the bottom left corner."]},
                {"id": "fewshot_readme", "template": "none",
                 "prompts": [FEW_SHOT], "images": [["red3", "yellow2", "green4", "blue1"]],
                 "truth": ["[blue, black, 1, top left]"]},
                {"id": "batch2_left_pad", "template": "none",
                 "prompts": ["[<IMG_PLH>]", "[<IMG_PLH>][red, white, 3, bottom left].[<IMG_PLH>]"],
                 "images": [["yellow2"], ["red3", "green4"]],
                 "truth": ["[yellow, white, 2, top right]", "[green, black, 4, bottom right]"]},
            ],
        },
        "vis448": {
            "model_dir": os.path.join(REPO, "tests", "models", "rand-vis448"),
            "make": make_rand_vis448,
            "images": dict(photos, dog1="dog1.jpg"),
            "eva_images": ("emu",),
            "max_new_tokens": MAX_NEW_RANDOM,
            "runs": [
                {"id": "describe_dog1", "template": "none",
                 "prompts": ["[<IMG_PLH>]Describe the image in details:"], "images": [["dog1"]]},
                {"id": "two_images", "template": "none",
                 "prompts": ["[<IMG_PLH>]This is an emu.[<IMG_PLH>]And this is"], "images": [["emu", "book1"]]},
                {"id": "batch2_left_pad", "template": "none",
                 "prompts": ["[<IMG_PLH>]What is in the picture?",
                             "Question: what colour is the cover of this book?[<IMG_PLH>] Answer:"],
                 "images": [["emu"], ["book1"]]},
                {"id": "text_only", "template": "none",
                 "prompts": ["The capital of France is"], "images": [[]]},
            ],
        },
        "chat": {
            "model_dir": os.path.join(REPO, "tests", "models", "rand-chat"),
            "make": make_rand_chat,
            "images": photos,
            "eva_images": ("book1",),
            "max_new_tokens": MAX_NEW_RANDOM,
            "runs": [
                {"id": "native_describe", "template": "native_chat",
                 "prompts": [native(["[<IMG_PLH>]describe the image in details:"])], "images": [["book1"]]},
                {"id": "native_two_images", "template": "native_chat",
                 "prompts": [native(["[<IMG_PLH>][<IMG_PLH>]What is the difference between these two images?"])],
                 "images": [["emu", "book1"]]},
                {"id": "native_multi_turn", "template": "native_chat",
                 "prompts": [native(["[<IMG_PLH>]What animal is this?", "It is an emu.", "Where does it live?"])],
                 "images": [["emu"]]},
                {"id": "hf_template", "template": "hf_chat",
                 "prompts": ["[<IMG_PLH>]What is this?"], "images": [["book1"]]},
                {"id": "native_batch2_left_pad", "template": "native_chat",
                 "prompts": [native(["[<IMG_PLH>]Is there a bird?"]),
                             native(["Hello, who are you?"], system=E.SYSTEM_GROUNDING)],
                 "images": [["emu"], []]},
            ],
        },
    }


# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def prompt_states(model, tok, cfg, prompts, pixels, chat, ids, attn):
    """(inputs_embeds [B,T,H], final-norm hidden state at the last position [B,H]) with generate()'s
    position ids (cumsum(mask) - 1, padded slots 1)."""
    ids2, attn2, emb = prepare(model, tok, cfg, prompts, pixels, "left", chat)
    if not (torch.equal(ids2, ids) and torch.equal(attn2, attn)):
        raise AssertionError("prepare() and first_step_logits() disagree on input ids")
    pos = attn.long().cumsum(-1) - 1
    pos.masked_fill_(attn == 0, 1)
    out = model.lm.model(inputs_embeds=emb, attention_mask=attn, position_ids=pos, use_cache=False)
    return emb, out.last_hidden_state[:, -1, :]


def native_decode(tok, ids):
    """decode(skip_special_tokens=True) as in Emu2's native code, where every added token ([IMG], <image>,
    <patch_index_*>, [USER], ...) is an additional special token and is therefore dropped. (The tokenizer
    files written by emu2ref list only [PAD] as special; token ids are the same either way.)"""
    added = set(tok.get_added_vocab().values())
    special = added | {tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}
    return tok.decode([i for i in ids if i not in special], skip_special_tokens=True)


def run_generation(model, tok, cfg, prompts, pixels, chat, mode, max_new):
    _, attn, emb = prepare(model, tok, cfg, prompts, pixels, "left", chat)
    out = model.lm.generate(
        inputs_embeds=emb, attention_mask=attn, num_beams=mode["num_beams"], max_new_tokens=max_new,
        min_length=1, length_penalty=mode["length_penalty"], do_sample=False, repetition_penalty=1.0,
        bos_token_id=cfg.get("bos_token_id", 1), eos_token_id=cfg.get("eos_token_id", 2),
        pad_token_id=cfg["pad_token_id"], return_dict_in_generate=True, output_scores=True)
    seqs = out.sequences
    if not bool((seqs[:, 0] == cfg.get("bos_token_id", 1)).all()):
        raise AssertionError("generate() with inputs_embeds should start its sequences with BOS")
    eos = cfg.get("eos_token_id", 2)
    rows = []
    for b, row in enumerate(seqs[:, 1:].tolist()):
        ids = row[:row.index(eos)] if eos in row else list(row)
        r = {"ids": ids, "eos": eos in row, "raw": row,
             "text": native_decode(tok, ids)}
        if mode["mode"] == "beam":
            r["sequence_score"] = float(out.sequences_scores[b])
        rows.append(r)
    # Cross-check with the package's own wrapper (same defaults; it strips EOS and trailing pads).
    ref = E.generate(model, tok, cfg, prompts, pixels, num_beams=mode["num_beams"], max_new_tokens=max_new,
                     min_len=1, length_penalty=mode["length_penalty"], chat=chat)
    pad = cfg["pad_token_id"]
    got = []
    for r in rows:
        g = list(r["ids"])
        while g and g[-1] == pad:
            g.pop()
        got.append(g)
    if got != ref["ids"]:
        raise AssertionError(f"generation differs from emu2ref.generate: {got} vs {ref['ids']}")
    return rows


def pixel_key(iname, size):
    return f"s{size}.{iname}"


def pixel_refs(iname, fname, size):
    """Where a case finds its pixels: the shared 'pixels' case (no 2.4 MB copies per model)."""
    k = pixel_key(iname, size)
    r = {"case": "pixels", "u8": k + ".u8", "image_size": size}
    if size <= F32_PIXELS_MAX_SIDE:
        r["f32"] = k + ".f32"
    return r


def build_pixels_case(specs, fix):
    """Every (image, image_size) that some case uses: the exact uint8 resize, and float32 pixels for small sizes."""
    from PIL import Image
    want = {}
    for spec in specs.values():
        cfg_path = os.path.join(spec["model_dir"], "config.json")
        if not os.path.isfile(cfg_path):
            continue
        size = E.load_config(cfg_path)["vision_config"]["image_size"]
        for iname, fname in spec["images"].items():
            want[pixel_key(iname, size)] = (iname, fname, size)
    case = Case("pixels")
    images = {}
    for k in sorted(want):
        iname, fname, size = want[k]
        path = seed(fname, fix)
        with Image.open(path) as im:
            orig = {"width": im.size[0], "height": im.size[1], "mode": im.mode, "format": im.format}
        u8 = torch.from_numpy(E.resized_uint8(path, size))
        px = E.preprocess(path, size)
        mean = torch.tensor(E.CLIP_MEAN, dtype=torch.float32)[:, None, None]
        std = torch.tensor(E.CLIP_STD, dtype=torch.float32)[:, None, None]
        if not torch.equal(px, (u8.permute(2, 0, 1).float() / 255 - mean) / std):
            raise AssertionError("preprocess() is not (u8 / 255 - mean) / std in float32")
        case.add(k + ".u8", u8, f"RGB uint8 HWC after convert('RGB') and PIL bicubic resize to {size}x{size} "
                 "(no crop, aspect not kept)", TOL_EXACT, image=iname)
        if size <= F32_PIXELS_MAX_SIDE:
            case.add(k + ".f32", px, "normalized pixels, float32 CHW (the EVA input)", TOL_PIXELS, image=iname)
        images[k] = {"name": iname, "file": "seed-images/" + fname, "sha256": sha256_file(path),
                     "original": orig, "image_size": size,
                     "tensors": {kk: vv for kk, vv in pixel_refs(iname, fname, size).items()
                                 if kk in ("u8", "f32")}}
    manifest = {
        "case": "pixels",
        "generator": "tests/reference/make_goldens.py",
        "fixtures": "image files are relative to the fixtures folder (EMU2-SPEC fixtures/)",
        "pixel_normalization": {"formula": "float32 CHW: (u8 / 255 - mean) / std per RGB channel, "
                                "each step rounded to float32 (ToTensor then Normalize)",
                                "mean": list(E.CLIP_MEAN), "std": list(E.CLIP_STD)},
        "images": images,
        "tolerances": TOLERANCE_DOC,
    }
    out_dir = os.path.join(HERE, "goldens", "pixels")
    case.write(out_dir, manifest)
    return out_dir


def make_tiny_standin(out_dir, calib_unused=None):
    """Random-weight model with the tiny model's geometry and tokenizer: only to exercise this pipeline
    before train_tiny.py has shipped models/emu2-tiny-digits (--tiny-standin). Never committed."""
    import train_tiny
    shipped = os.path.join(REPO, "models", "emu2-tiny-digits")
    tok = E.load_tokenizer(shipped)
    cfg = train_tiny.tiny_config(len(tok))
    model = E.randomize_(E.build_model(cfg, seed=96), seed=961)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    E.save_pretrained(model, cfg, out_dir, tokenizer_dir=shipped, fmt="safetensors", naming="hf")
    return {"layout": "STAND-IN random model with the tiny geometry (not the shipped model)"}


def build_case(name, spec, fix):
    torch.manual_seed(0)
    model_dir = spec["model_dir"]
    chat_mode = {"none": "none", "native_chat": "none", "hf_chat": "hf"}
    if "make" in spec:
        calib = [(r["prompts"], [seed(spec["images"][n], fix) for per in r["images"] for n in per],
                  chat_mode[r["template"]]) for r in spec["runs"]]
        made = spec["make"](fix, model_dir, calib)
    else:
        made = {"layout": "shipped model, not rebuilt by this script"}
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise FileNotFoundError(f"{name}: model {model_dir} is missing")
    model, cfg = E.load_pretrained(model_dir)  # weights upcast from the stored dtype to float32
    model.eval()
    tok = E.load_tokenizer(model_dir)
    v = cfg["vision_config"]
    size, nq = v["image_size"], v["n_query"]

    case = Case(name)
    images = {}
    pixels_by_name = {}
    for iname in sorted(spec["images"]):
        path = seed(spec["images"][iname], fix)
        px = E.preprocess(path, size)
        pixels_by_name[iname] = px
        vo = E.vision_block_outputs(model, cfg, [px])
        pre = f"image.{iname}."
        t = {}
        if iname in spec["eva_images"]:
            t["eva_block_first"] = case.add(pre + "eva_block_first", vo["blocks"][0][0],
                                            "EVA residual stream after block 0 [1+grid^2, width] (CLS first)",
                                            TOL_FP32, image=iname)
            t["eva_block_last"] = case.add(pre + "eva_block_last", vo["blocks"][-1][0],
                                           f"EVA output after the last block (block {len(vo['blocks']) - 1}), "
                                           "no final norm", TOL_FP32, image=iname)
        t["pooled"] = case.add(pre + "pooled", vo["pooled"][0],
                               f"CLS dropped, avg-pooled to n_query={nq} tokens [n_query, width]", TOL_FP32,
                               image=iname)
        t["project_up"] = case.add(pre + "project_up", vo["up"][0],
                                   "project_up(pooled) [n_query, hidden]: the rows spliced into <image> slots",
                                   TOL_FP32, image=iname)
        images[iname] = {"file": "seed-images/" + spec["images"][iname], "sha256": sha256_file(path),
                         "pixels": pixel_refs(iname, spec["images"][iname], size), "tensors": t}

    runs = []
    max_new = spec["max_new_tokens"]
    for r in spec["runs"]:
        prompts, chat = r["prompts"], chat_mode[r["template"]]
        flat = [n for per in r["images"] for n in per]
        pixels = [pixels_by_name[n] for n in flat]
        logits, ids, attn = E.first_step_logits(model, tok, cfg, prompts, pixels, padding_side="left", chat=chat)
        texts = [E.chat_prompt_hf(p) if chat == "hf" else p for p in prompts]
        lname = case.add(f"run.{r['id']}.logits_first_step", logits,
                         "float32 logits [batch, vocab] at the last prompt position (first generation step)",
                         TOL_FP32, run=r["id"])
        emb, hidden = prompt_states(model, tok, cfg, prompts, pixels, chat, ids, attn)
        if not torch.allclose(model.lm.lm_head(hidden), logits, rtol=0, atol=1e-5 * float(logits.abs().max())):
            raise AssertionError("lm_head(hidden_last) does not reproduce logits_first_step")
        ename = case.add(f"run.{r['id']}.inputs_embeds", emb,
                         "decoder input [batch, T, hidden]: token embeddings with project_up rows spliced into "
                         "the <image> slots (pad rows hold the [PAD] embedding; they are masked)",
                         TOL_FP32, run=r["id"])
        hname = case.add(f"run.{r['id']}.hidden_last", hidden,
                         "decoder output after the final RMSNorm at the last prompt position [batch, hidden] "
                         "(lm_head input)", TOL_FP32, run=r["id"])
        gens = []
        for mode in GEN_MODES:
            rows = run_generation(model, tok, cfg, prompts, pixels, chat, mode, max_new)
            gens.append({"mode": mode["mode"], "num_beams": mode["num_beams"],
                         "length_penalty": mode["length_penalty"], "max_new_tokens": max_new,
                         "min_length": 1, "do_sample": False, "repetition_penalty": 1.0,
                         "early_stopping": False, "eos_token_id": cfg.get("eos_token_id", 2),
                         "pad_token_id": cfg["pad_token_id"], "outputs": rows})
        runs.append({
            "id": r["id"], "template": r["template"], "prompts": prompts, "texts": texts,
            "images": r["images"], "images_flat": flat, "padding_side": "left",
            "input_ids": ids.tolist(), "attention_mask": attn.tolist(),
            "position_ids_rule": "cumsum(attention_mask)-1, padded slots 1",
            "logits_first_step": lname, "inputs_embeds": ename, "hidden_last": hname, "generations": gens,
        })
        if "truth" in r:
            runs[-1]["truth"] = r["truth"]
            for g in gens:
                for b, o in enumerate(g["outputs"]):
                    o["matches_truth"] = o["text"].strip() == r["truth"][b]

    manifest = {
        "case": name,
        "generator": "tests/reference/make_goldens.py",
        "model": {
            "dir": rel(model_dir),
            "config_sha256": sha256_file(os.path.join(model_dir, "config.json")),
            "model_version": cfg["model_version"], "vocab_size": cfg["vocab_size"],
            "storage_dtype": cfg["torch_dtype"], "image_size": size, "patch_size": v["patch_size"],
            "n_query": nq, "vision_width": v["width"], "hidden_size": cfg["hidden_size"],
            "files": sorted(fn for fn in os.listdir(model_dir)),
            "weights_sha256": {fn: sha256_file(os.path.join(model_dir, fn)) for fn in sorted(os.listdir(model_dir))
                               if fn.endswith((".safetensors", ".bin", ".index.json"))},
            "origin": made,
        },
        "compute": {"dtype": "float32", "weights": "upcast from storage_dtype to float32", "threads": 1,
                    "torch": torch.__version__.split("+")[0], "transformers": __import__("transformers").__version__,
                    "timm": __import__("timm").__version__, "tokenizer": "slow LlamaTokenizer (legacy=True)"},
        "fixtures": "image files are relative to the fixtures folder (EMU2-SPEC fixtures/)",
        "generation_notes": ("transformers 4.31 generate(inputs_embeds=...) starts each sequence with a BOS "
                             "that is never fed to the model: 'raw' excludes it, but beam hypothesis lengths "
                             "count it (L = 1 + generated tokens, EOS excluded) and min_length=1 therefore bans "
                             "nothing. 'ids' = raw up to (excluding) the first EOS; in a batch finished rows "
                             "are padded with pad_token_id."),
        "images": images,
        "runs": runs,
        "tolerances": TOLERANCE_DOC,
    }
    out_dir = os.path.join(HERE, "goldens", name)
    case.write(out_dir, manifest)
    return out_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="tiny,vis448,chat")
    ap.add_argument("--fixtures", default=default_fixtures())
    ap.add_argument("--tiny-standin", metavar="DIR",
                    help="build a random model with the tiny geometry in DIR and use it for the tiny case "
                         "(pipeline test only; the real goldens use models/emu2-tiny-digits)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    specs = case_specs()
    if args.tiny_standin:
        specs["tiny"]["model_dir"] = os.path.abspath(args.tiny_standin)
        specs["tiny"]["make"] = lambda fix, d, calib: make_tiny_standin(d)
    for name in args.cases.split(","):
        if name not in specs:
            raise SystemExit(f"unknown case {name}; known: {', '.join(specs)}")
        out = build_case(name, specs[name], args.fixtures)
        print(f"wrote {rel(out)}", flush=True)
    print(f"wrote {rel(build_pixels_case(specs, args.fixtures))}", flush=True)


if __name__ == "__main__":
    main()
