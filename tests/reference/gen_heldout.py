"""Held-out accuracy set for the engine: 500 synthetic images the tiny model never saw, with their true
captions and the PyTorch reference's answers (tests/extra/heldout_accuracy.sh compares the engine to both).

The images are eval_tiny.py's held-out split (emu2ref.data.make_split(500, seed 2000)), shrunk so that
the longest side is at most 240 px and re-encoded as JPEG (quality 90) to keep the repository small;
the PyTorch answers are computed on these very files, one image at a time, with the published
wrapper's generation (beams 5, length_penalty -1, max_new_tokens 32), prompt "[<IMG_PLH>]".

    /work/venv-ref/bin/python tests/reference/gen_heldout.py [--model models/emu2-tiny-digits]
"""
import argparse
import io
import os
import sys

import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emu2ref as E  # noqa: E402
from emu2ref import data as D  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))


def shrink(jpeg, max_side=240):
    im = Image.open(io.BytesIO(jpeg)).convert("RGB")
    scale = min(1.0, max_side / max(im.size))
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models/emu2-tiny-digits"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/heldout"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=2000)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, cfg = E.load_pretrained(a.model)
    model.eval()
    tok = E.load_tokenizer(a.model)
    os.makedirs(a.out, exist_ok=True)
    labels, answers = [], []
    for i, (jpeg, label) in enumerate(D.make_split(a.n, a.seed)):
        small = shrink(jpeg)
        name = f"{i:03d}.jpg"
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(small)
        with torch.no_grad():
            r = E.generate(model, tok, cfg, [E.IMG_PLH], [E.load_rgb(small)], num_beams=5, length_penalty=-1.0,
                           max_new_tokens=32, min_len=1)
        labels.append(D.caption(label))
        answers.append(r["text"][0].strip())
    with open(os.path.join(a.out, "labels.txt"), "w") as f:
        f.write("\n".join(labels) + "\n")
    with open(os.path.join(a.out, "torch_answers.txt"), "w") as f:
        f.write("\n".join(answers) + "\n")
    acc = sum(x == y for x, y in zip(labels, answers)) / a.n
    print(f"PyTorch reference accuracy on {a.n} held-out images: {acc:.4f}")

    # the seed's examples (tests/cli/test_generate.sh): the reference's answers next to the truth
    ex = os.path.join(a.model, "examples")
    seeds = ["red_white_3_bottom_left", "yellow_white_2_top_right", "green_black_4_bottom_right",
             "blue_black_1_top_left"]
    imgs = [E.load_rgb(os.path.join(ex, n + ".jpg")) for n in seeds]
    rows = []

    def answer(prompt, images, **kw):
        with torch.no_grad():
            r = E.generate(model, tok, cfg, [prompt], images, num_beams=kw.get("num_beams", 5), length_penalty=-1.0,
                           max_new_tokens=kw.get("max_new_tokens", 64), min_len=1)
        return r["text"][0].strip()

    for n, im in zip(seeds, imgs):
        c, d, digit, p1, p2 = n.split("_")
        rows.append((f"label:{n}", answer(E.IMG_PLH, [im]), f"[{c}, {d}, {digit}, {p1} {p2}]"))
    rows.append(("describe:blue_black_1_top_left", answer(E.IMG_PLH + "Describe the image in details:", [imgs[3]]),
                 "A blue circle with a black 1 in the top left corner."))
    fewshot = ("[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]")
    rows.append(("fewshot", answer(fewshot, imgs), "[blue, black, 1, top left]"))
    rows.append(("fewshot-greedy", answer(fewshot, imgs, num_beams=1), "[blue, black, 1, top left]"))
    with open(os.path.join(a.out, "seed_answers.tsv"), "w") as f:
        f.write("# case\tPyTorch reference answer\ttruth\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    for r in rows:
        print("  ".join(r))


if __name__ == "__main__":
    main()
