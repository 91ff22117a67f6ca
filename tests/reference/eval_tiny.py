"""Evaluate the shipped tiny model through the published-wrapper generation path.

python tests/reference/eval_tiny.py [--model models/emu2-tiny-digits] [--n 500] [--n-describe 100]
Loads the shipped files with emu2ref.io.load_pretrained; beam search 5, length_penalty -1, max_new_tokens 32.
Exit status 1 if held-out caption accuracy < --target or a seed-image check fails.
"""
import argparse
import io
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emu2ref as E  # noqa: E402
from emu2ref import data as D  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = ["red_white_3_bottom_left.jpg", "yellow_white_2_top_right.jpg", "green_black_4_bottom_right.jpg",
         "blue_black_1_top_left.jpg"]
FEWSHOT = ("[<IMG_PLH>][red, white, 3, bottom left].[<IMG_PLH>][yellow, white, 2, top left]."
           "[<IMG_PLH>][green, black, 4, bottom right][<IMG_PLH>]")
GEN = dict(num_beams=5, length_penalty=-1.0, max_new_tokens=32, min_len=1)


def run_batch(model, tok, cfg, prompt, imgs, bs=20):
    out = []
    for i in range(0, len(imgs), bs):
        chunk = imgs[i:i + bs]
        out += E.generate(model, tok, cfg, [prompt] * len(chunk), chunk, **GEN)["text"]
    return [t.strip() for t in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "../../models/emu2-tiny-digits"))
    ap.add_argument("--seed-images", default=os.environ.get("EMU2_SEED_IMAGES", "/work/shared/fixtures/seed-images"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--n-describe", type=int, default=100)
    ap.add_argument("--heldout-seed", type=int, default=2000)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, cfg = E.load_pretrained(a.model)
    tok = E.load_tokenizer(a.model)
    res, ok = {}, True
    t0 = time.time()

    split = D.make_split(a.n, a.heldout_seed)
    imgs = [E.load_rgb(b) for b, _ in split]
    got = run_batch(model, tok, cfg, E.IMG_PLH, imgs)
    want = [D.caption(l) for _, l in split]
    hits = sum(g == w for g, w in zip(got, want))
    res["heldout_caption_acc"] = hits / a.n
    res["heldout_caption_errors"] = [(w, g) for g, w in zip(got, want) if g != w][:20]
    fields = [0, 0, 0, 0]
    for g, w in zip(got, want):
        gp, wp = g.strip("[]").split(", "), w.strip("[]").split(", ")
        for k in range(4):
            fields[k] += int(len(gp) == 4 and gp[k] == wp[k])
    res["heldout_field_acc"] = dict(zip(["colour", "digit_colour", "digit", "position"], [f / a.n for f in fields]))
    if a.n_describe:
        nd = min(a.n_describe, a.n)
        gd = run_batch(model, tok, cfg, E.IMG_PLH + D.DESCRIBE_PROMPT, imgs[:nd])
        res["heldout_describe_acc"] = sum(g == D.sentence(l) for g, (_, l) in zip(gd, split[:nd])) / nd
        res["heldout_describe_n"] = nd
    if res["heldout_caption_acc"] < a.target:
        ok = False

    seed_paths = [os.path.join(a.seed_images, f) for f in SEEDS]
    seed_imgs = [E.load_rgb(p) for p in seed_paths]
    res["seed_captions"] = {}
    for f, im in zip(SEEDS, seed_imgs):
        g = run_batch(model, tok, cfg, E.IMG_PLH, [im])[0]
        w = D.caption(D.parse_seed_name(f))
        res["seed_captions"][f] = {"got": g, "want": w, "ok": g == w}
        ok &= g == w
    g = E.generate(model, tok, cfg, FEWSHOT, seed_imgs, **GEN)["text"][0].strip()
    res["fewshot"] = {"got": g, "want": "[blue, black, 1, top left]", "ok": g == "[blue, black, 1, top left]"}
    ok &= res["fewshot"]["ok"]
    short = FEWSHOT.replace(E.IMG_PLH, "[]")
    g = E.generate(model, tok, cfg, short, seed_imgs, **GEN)["text"][0].strip()
    res["fewshot_short_placeholder"] = {"got": g, "ok": g == "[blue, black, 1, top left]"}
    ok &= res["fewshot_short_placeholder"]["ok"]
    blue = seed_imgs[3]
    g = run_batch(model, tok, cfg, E.IMG_PLH + D.DESCRIBE_PROMPT, [blue])[0]
    w = D.sentence(D.parse_seed_name(SEEDS[3]))
    res["describe_blue"] = {"got": g, "want": w, "ok": g == w}
    ok &= g == w
    res["seconds"] = round(time.time() - t0, 1)
    res["pass"] = bool(ok)
    s = json.dumps(res, indent=2)
    print(s)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            f.write(s + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
