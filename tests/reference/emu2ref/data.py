"""Synthetic images like the seed's few-shot examples (fixtures/seed-images/*_*_*_*.jpg).

A light-grey square (~#f2f2f2) with one filled circle (~1/3 of the width) in one corner holding a digit in
white or black. Caption format of Emu2's README: "[red, white, 3, bottom left]". Deterministic per seed.
"""
import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Office-like palette (the seed images use these red/yellow/green/blue) plus five more colours.
COLORS = {
    "red": (192, 0, 0),
    "yellow": (255, 192, 0),
    "green": (112, 173, 71),
    "blue": (68, 114, 196),
    "orange": (237, 125, 49),
    "purple": (112, 48, 160),
    "pink": (255, 105, 180),
    "brown": (133, 87, 35),
    "cyan": (0, 176, 240),
}
DIGIT_COLORS = {"white": (255, 255, 255), "black": (0, 0, 0)}
POSITIONS = ["top left", "top right", "bottom left", "bottom right"]
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
]
DESCRIBE_PROMPT = "Describe the image in details:"
_font_cache = {}


def caption(label):
    """label = (colour, digit colour, digit, position) -> '[red, white, 3, bottom left]'."""
    c, dc, d, p = label
    return f"[{c}, {dc}, {d}, {p}]"


def sentence(label):
    c, dc, d, p = label
    return f"A {c} circle with a {dc} {d} in the {p} corner."


def parse_seed_name(name):
    """'yellow_white_2_top_right.jpg' -> ('yellow', 'white', 2, 'top right')."""
    parts = name.rsplit("/", 1)[-1].rsplit(".", 1)[0].split("_")
    return parts[0], parts[1], int(parts[2]), " ".join(parts[3:])


def _font(path, size):
    key = (path, size)
    if key not in _font_cache:
        _font_cache[key] = ImageFont.truetype(path, size)
    return _font_cache[key]


def random_label(rng):
    return (rng.choice(list(COLORS)), rng.choice(list(DIGIT_COLORS)), rng.randrange(10), rng.choice(POSITIONS))


def render(label, rng):
    """-> (JPEG bytes, label). All jitter comes from rng (random.Random)."""
    c, dc, d, p = label
    s = rng.randint(200, 1000)
    w, h = s, max(64, int(round(s * rng.uniform(0.985, 1.02))))
    bg = 242 + rng.randint(-3, 3)
    img = Image.new("RGB", (w, h), (bg, bg, bg))
    dr = ImageDraw.Draw(img)
    if rng.random() < 0.3:  # thin white frame lines as in some seed images
        for _ in range(rng.randint(1, 2)):
            side = rng.randrange(4)
            v = rng.randint(248, 255)
            box = [(0, 0, w, 0), (0, h - 1, w, h - 1), (0, 0, 0, h), (w - 1, 0, w - 1, h)][side]
            dr.line(box, fill=(v, v, v), width=max(1, s // 400))
    m = min(w, h)
    dia = m * rng.uniform(0.30, 0.37)
    mx, my = m * rng.uniform(0.05, 0.11), m * rng.uniform(0.05, 0.11)
    x0 = mx if "left" in p else w - mx - dia
    y0 = my if "top" in p else h - my - dia
    col = tuple(int(min(255, max(0, v + rng.randint(-14, 14)))) for v in COLORS[c])
    dr.ellipse((x0, y0, x0 + dia, y0 + dia), fill=col)
    dcol = tuple(int(min(255, max(0, v + rng.randint(-10, 10)))) for v in DIGIT_COLORS[dc])
    font = _font(rng.choice(FONTS), max(8, int(dia * rng.uniform(0.42, 0.55))))
    cx = x0 + dia / 2 + dia * rng.uniform(-0.04, 0.04)
    cy = y0 + dia / 2 + dia * rng.uniform(-0.04, 0.04)
    dr.text((cx, cy), str(d), fill=dcol, font=font, anchor="mm")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rng.randint(55, 95))
    return buf.getvalue()


def make_split(n, seed):
    """n (jpeg_bytes, label) pairs, deterministic in seed. Labels are balanced by cycling a shuffled grid."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = random_label(rng)
        out.append((render(label, rng), label))
    return out


def resized_split(n, seed, image_size):
    """-> uint8 [n, s, s, 3] (JPEG decoded, PIL bicubic resize as §2) and the labels."""
    from .preprocess import resized_uint8
    arr = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    labels = []
    rng = random.Random(seed)
    for i in range(n):
        label = random_label(rng)
        arr[i] = resized_uint8(io.BytesIO(render(label, rng)), image_size)
        labels.append(label)
    return arr, labels
