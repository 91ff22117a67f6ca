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


if __name__ == "__main__":
    main()
