"""Consistency check of the committed goldens written by make_goldens.py (cases tiny, vis448, chat, pixels).

  python tests/reference/check_goldens.py [case ...]

Checks, per case: the manifest is valid JSON with sorted keys; every tensor it lists is in
tensors.safetensors with that shape and dtype and nothing else is; every reference (image tensors, pixel
refs into the pixels case, run logits) resolves; input_ids/attention_mask are left-padded rectangles whose
<image> count matches the images; the first greedy token is the argmax of logits_first_step; the model
directory exists with the recorded config and weight-file hashes (stale goldens fail). Exit status 1 on any failure.
"""
import json
import os
import sys

from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from golden_io import sha256_file  # noqa: E402

IMAGE_ID = 32003  # '<image>' in every Emu2 vocabulary (sentencepiece 32000 + 3); tiny: from its tokenizer


class Fail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Fail(msg)


def sorted_keys(obj, where="$"):
    if isinstance(obj, dict):
        keys = list(obj)
        need(keys == sorted(keys), f"{where}: keys not sorted")
        for k, v in obj.items():
            sorted_keys(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            sorted_keys(v, f"{where}[{i}]")


def load_case(name):
    d = os.path.join(HERE, "goldens", name)
    with open(os.path.join(d, "manifest.json"), encoding="utf-8") as f:
        m = json.load(f)
    sorted_keys(m)
    need(m["case"] == name, f"{name}: manifest case is {m['case']}")
    tensors = {}
    with safe_open(os.path.join(d, m["tensors_file"]), framework="pt") as f:
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    listed = {e["name"]: e for e in m["tensors"]}
    need(len(listed) == len(m["tensors"]), f"{name}: duplicate tensor entries")
    need(set(listed) == set(tensors), f"{name}: manifest/safetensors mismatch "
         f"{sorted(set(listed) ^ set(tensors))[:5]}")
    for k, e in listed.items():
        t = tensors[k]
        need(list(t.shape) == e["shape"], f"{name}:{k} shape {list(t.shape)} != {e['shape']}")
        want = {"F32": "torch.float32", "U8": "torch.uint8"}[e["dtype"]]
        need(str(t.dtype) == want, f"{name}:{k} dtype {t.dtype} != {want}")
        need(e["tolerance"]["kind"] in m["tolerances"], f"{name}:{k} unknown tolerance kind")
        need(e["what"], f"{name}:{k} has no description")
    return m, tensors


def image_token_id(m):
    if m["model"]["vocab_size"] >= 32272:
        return IMAGE_ID
    with open(os.path.join(REPO, m["model"]["dir"], "added_tokens.json"), encoding="utf-8") as f:
        return json.load(f)["<image>"]


def check_model_case(name, pixels):
    m, tensors = load_case(name)
    mdir = os.path.join(REPO, m["model"]["dir"])
    need(os.path.isfile(os.path.join(mdir, "config.json")), f"{name}: model dir {mdir} missing")
    need(sha256_file(os.path.join(mdir, "config.json")) == m["model"]["config_sha256"],
         f"{name}: config.json changed since the goldens were made")
    for fn, h in m["model"]["weights_sha256"].items():
        need(os.path.isfile(os.path.join(mdir, fn)) and sha256_file(os.path.join(mdir, fn)) == h,
             f"{name}: weights {fn} changed since the goldens were made (regenerate: make -C tests/reference "
             "goldens-main)")
    nq, vocab = m["model"]["n_query"], m["model"]["vocab_size"]
    for iname, im in m["images"].items():
        for key, tn in im["tensors"].items():
            need(tn in tensors, f"{name}: image {iname} {key} -> missing tensor {tn}")
        need(tensors[im["tensors"]["pooled"]].shape[0] == nq, f"{name}:{iname} pooled rows != n_query")
        px = im["pixels"]
        need(px["case"] == "pixels" and px["u8"] in pixels, f"{name}:{iname} pixel ref {px['u8']} unresolved")
        s = m["model"]["image_size"]
        need(list(pixels[px["u8"]].shape) == [s, s, 3], f"{name}:{iname} pixels not {s}x{s}x3")
    img_id = image_token_id(m)
    for r in m["runs"]:
        ids, attn = r["input_ids"], r["attention_mask"]
        need(len(ids) == len(attn) == len(r["prompts"]) == len(r["images"]), f"{name}:{r['id']} batch sizes")
        width = len(ids[0])
        for b, (row, mask) in enumerate(zip(ids, attn)):
            need(len(row) == len(mask) == width, f"{name}:{r['id']} not rectangular")
            first = mask.index(1)
            need(all(x == 0 for x in mask[:first]) and all(x == 1 for x in mask[first:]),
                 f"{name}:{r['id']} row {b} is not left-padded")
            need(row[first] == 1, f"{name}:{r['id']} row {b} does not start with BOS")
            n_img = sum(1 for t in row if t == img_id)
            need(n_img == nq * len(r["images"][b]), f"{name}:{r['id']} row {b}: {n_img} <image> ids")
            need(all(0 <= t < vocab for t in row), f"{name}:{r['id']} id out of vocab")
        need(r["images_flat"] == [n for per in r["images"] for n in per], f"{name}:{r['id']} images_flat")
        logits = tensors[r["logits_first_step"]]
        need(list(logits.shape) == [len(ids), vocab], f"{name}:{r['id']} logits shape")
        hidden = m["model"]["hidden_size"]
        need(list(tensors[r["inputs_embeds"]].shape) == [len(ids), width, hidden], f"{name}:{r['id']} embeds")
        need(list(tensors[r["hidden_last"]].shape) == [len(ids), hidden], f"{name}:{r['id']} hidden_last")
        modes = {(g["mode"], g["length_penalty"]) for g in r["generations"]}
        need({("greedy", 1.0), ("beam", -1.0), ("beam", 2.0)} <= modes, f"{name}:{r['id']} modes {modes}")
        for g in r["generations"]:
            need(len(g["outputs"]) == len(ids), f"{name}:{r['id']} outputs per row")
            for b, o in enumerate(g["outputs"]):
                need(len(o["raw"]) <= g["max_new_tokens"], f"{name}:{r['id']} too many tokens")
                eos = g["eos_token_id"]
                cut = o["raw"].index(eos) if eos in o["raw"] else len(o["raw"])
                need(o["ids"] == o["raw"][:cut] and o["eos"] == (eos in o["raw"]),
                     f"{name}:{r['id']} ids/raw/eos disagree")
                if g["mode"] == "greedy":
                    # step 0 of greedy is the argmax of the first-step logits (min_length=1 bans nothing)
                    need(o["raw"][0] == int(logits[b].argmax()),
                         f"{name}:{r['id']} row {b}: greedy token 0 is not argmax(logits_first_step)")
                else:
                    need("sequence_score" in o, f"{name}:{r['id']} beam output without sequence_score")
    return m


def main():
    names = sys.argv[1:] or [n for n in ("tiny", "vis448", "chat")
                             if os.path.isdir(os.path.join(HERE, "goldens", n))]
    failures = 0
    try:
        _, pixels = load_case("pixels")
    except (Fail, OSError, KeyError, ValueError) as e:
        print(f"FAIL pixels: {e}")
        return 1
    for n in names:
        try:
            m = check_model_case(n, pixels)
            print(f"ok   {n}: {len(m['tensors'])} tensors, {len(m['runs'])} runs")
        except (Fail, OSError, KeyError, ValueError) as e:
            failures += 1
            print(f"FAIL {n}: {e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
