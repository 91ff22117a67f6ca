#!/usr/bin/env python3
"""gen_image_goldens.py: inputs and Pillow 10.1 goldens for the C image preprocessing (dev-time only).

Writes under tests/data/image/:
  inputs/*.png|*.jpg     small generated images of odd sizes and modes (committed test inputs)
  expected/*.png         full expected uint8 RGB outputs, only for small outputs (<= 4096 pixels)
  goldens.tsv            one case per line, tab-separated (see the header comment written into it)
  normalize_table.f32    torchvision ToTensor+Normalize of every uint8 value: [3][256] float32 LE
  seed_rows.f32          rows of the normalized 448x448 tensor of one seed image (see goldens.tsv)

What "expected" means: Image.open(f).convert('RGB') (decode), then .resize((W, H), Image.BICUBIC)
(resize), exactly what Emu2's reference code feeds torchvision. Cases where Pillow fails to open
or load are recorded as `error` lines: the C decoder must fail on them too.

Run: /work/venv-ref/bin/python tests/reference/gen_image_goldens.py [--shared ../shared]
(also installed as gen_resize_goldens.py, a symlink, for the same job). Needs jpegtran/cjpeg
(Debian libjpeg-turbo-progs) and libturbojpeg.so.0 (for YCCK) at generation time only.
"""
import argparse
import ctypes
import hashlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import PIL
from PIL import Image

assert PIL.__version__ == "10.1.0", PIL.__version__

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "image")
INPUTS = os.path.join(OUT, "inputs")
EXPECTED = os.path.join(OUT, "expected")
SMALL = 4096  # outputs up to this many pixels are stored in full
SEED_FLOAT_IMAGE = "red_white_3_bottom_left.jpg"
SEED_FLOAT_ROWS = (0, 1, 100, 223, 224, 447)
TRUNCATED_INPUTS = ("jpeg420_300x200.jpg", "jpeg420_progressive_101x67.jpg", "jpeg_q5_101x67.jpg",
                    "jpeg_gray_101x67.jpg", "jpeg_cmyk_41x23.jpg", "rgb8_64x48.png",
                    "rgb8_interlaced_37x29.png", "pal4_37x15.png", "gray16_40x30.png")

rng = np.random.RandomState(20261124)


# ---------------------------------------------------------------- pixel content

def content(w, h, ch, maxv=255):
    """Gradient + shapes + noise: smooth parts, hard edges (overshoot -> clamping) and detail."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(ch):
        g = (x * (37 + 11 * c) + y * (23 + 7 * c)) % (maxv + 1)
        edge = ((x // max(1, w // 5) + y // max(1, h // 4) + c) % 2) * maxv
        noise = rng.randint(0, maxv + 1, size=(h, w))
        sel = rng.randint(0, 3, size=(h, w))
        p = np.where(sel == 0, g, np.where(sel == 1, edge, noise))
        # keep some flat blocks so PNG/JPEG sizes stay small and smooth regions are tested
        p[: h // 3, : w // 3] = (c * 97) % (maxv + 1)
        planes.append(p)
    a = np.stack(planes, axis=-1)
    return np.clip(a, 0, maxv).astype(np.uint16 if maxv > 255 else np.uint8)


# ---------------------------------------------------------------- a tiny PNG writer for modes PIL cannot save

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """samples: 1-D int array of one row (all channels interleaved) -> bytes at this bit depth."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for j in range(per):
            v = int(samples[i + j]) if i + j < len(samples) else 0
            b |= v << (8 - depth * (j + 1))
        out.append(b)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, arr, color_type, depth, palette=None, trns=None, interlace=False, extra=b""):
    """arr: HxWxC (or HxW) integer samples. Rows use filter 0 (None), interlace = Adam7."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, _ = arr.shape
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw.append(0)
            raw += pack_row(row.reshape(-1), depth)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        data += png_chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += extra
    data += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    data += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- JPEG helpers

def save_pil(path, img, **kw):
    img.save(path, **kw)


def cjpeg(path, rgb, *args):
    with tempfile.NamedTemporaryFile(suffix=".ppm") as t:
        Image.fromarray(rgb).save(t.name)
        subprocess.run(["cjpeg", *args, "-outfile", path, t.name], check=True)


def jpegtran(src, dst, *args):
    subprocess.run(["jpegtran", *args, "-outfile", dst, src], check=True)


def ycck_jpeg(path, cmyk):
    """TurboJPEG turns packed CMYK into a YCCK JPEG (PIL cannot write YCCK)."""
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    h = tj.tjInitCompress()
    hgt, wid, _ = cmyk.shape
    buf = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    src = np.ascontiguousarray(cmyk, dtype=np.uint8)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rc = tj.tjCompress2(ctypes.c_void_p(h), src.ctypes.data_as(ctypes.c_void_p), wid, 0, hgt, TJPF_CMYK,
                        ctypes.byref(buf), ctypes.byref(size), TJSAMP_420, 90, 0)
    assert rc == 0
    with open(path, "wb") as f:
        f.write(ctypes.string_at(buf, size.value))
    tj.tjFree(buf)
    tj.tjDestroy(ctypes.c_void_p(h))


# ---------------------------------------------------------------- the inputs

def make_inputs():
    os.makedirs(INPUTS, exist_ok=True)
    made = []

    def p(name):
        made.append(name)
        return os.path.join(INPUTS, name)

    # 8-bit RGB PNGs of odd sizes
    for w, h in [(1, 1), (2, 3), (7, 301), (449, 13), (1000, 37), (1, 500), (500, 1), (3000, 2), (64, 48)]:
        Image.fromarray(content(w, h, 3)).save(p(f"rgb8_{w}x{h}.png"))
    # hard 0/255 checkerboard: every filter overshoots, clamping decides
    cb = (((np.indices((48, 40)).sum(0)) % 2) * 255).astype(np.uint8)
    Image.fromarray(np.stack([cb, 255 - cb, cb], -1)).save(p("checker_40x48.png"))
    # piecewise-constant 448x448 (identity resize at 448, compresses well)
    y, x = np.mgrid[0:448, 0:448]
    sq = np.stack([(x // 56 * 31) % 256, (y // 64 * 47) % 256, ((x + y) // 100 * 61) % 256], -1).astype(np.uint8)
    Image.fromarray(sq).save(p("blocks_448x448.png"))
    # greyscale, all bit depths
    Image.fromarray(content(33, 17, 1)[:, :, 0]).save(p("gray8_33x17.png"))
    write_png(p("gray1_19x11.png"), rng.randint(0, 2, (11, 19)), 0, 1)
    write_png(p("gray2_23x9.png"), rng.randint(0, 4, (9, 23)), 0, 2)
    write_png(p("gray4_21x13.png"), rng.randint(0, 16, (13, 21)), 0, 4)
    g16 = content(40, 30, 1, 65535)[:, :, 0]
    g16[10:, :20] = rng.randint(0, 600, (20, 20))  # around 255: the "I" mode clip is visible
    write_png(p("gray16_40x30.png"), g16, 0, 16)
    write_png(p("gray8_trns_17x9.png"), content(17, 9, 1)[:, :, 0], 0, 8, trns=struct.pack(">H", 0))
    # grey + alpha
    write_png(p("la8_31x29.png"), content(31, 29, 2), 4, 8)
    write_png(p("la16_27x19.png"), content(27, 19, 2, 65535), 4, 16)
    # RGB(A) 16-bit and RGBA 8-bit
    write_png(p("rgb16_29x31.png"), content(29, 31, 3, 65535), 2, 16)
    write_png(p("rgba8_45x27.png"), content(45, 27, 4), 6, 8)
    write_png(p("rgba16_23x37.png"), content(23, 37, 4, 65535), 6, 16)
    write_png(p("rgb8_trns_13x11.png"), content(13, 11, 3), 2, 8, trns=struct.pack(">HHH", 0, 0, 0))
    # palettes
    pal = rng.randint(0, 256, (256, 3))
    write_png(p("pal8_50x20.png"), rng.randint(0, 256, (20, 50)), 3, 8, palette=pal)
    write_png(p("pal4_37x15.png"), rng.randint(0, 16, (15, 37)), 3, 4, palette=pal[:16])
    write_png(p("pal2_25x10.png"), rng.randint(0, 4, (10, 25)), 3, 2, palette=pal[:4])
    write_png(p("pal1_30x7.png"), rng.randint(0, 2, (7, 30)), 3, 1, palette=pal[:2])
    write_png(p("pal8_trns_33x21.png"), rng.randint(0, 64, (21, 33)), 3, 8, palette=pal[:64],
              trns=bytes(rng.randint(0, 256, 40).astype(np.uint8)))
    write_png(p("pal8_short_16x16.png"), rng.randint(0, 12, (16, 16)), 3, 8, palette=pal[:6])
    pim = Image.fromarray(content(61, 43, 3)).quantize(200)
    pim.save(p("pal8_pil_61x43.png"))
    # Adam7 interlaced
    write_png(p("rgb8_interlaced_37x29.png"), content(37, 29, 3), 2, 8, interlace=True)
    write_png(p("gray16_interlaced_9x7.png"), content(9, 7, 1, 65535)[:, :, 0] // 200, 0, 16, interlace=True)
    write_png(p("pal4_interlaced_11x19.png"), rng.randint(0, 16, (19, 11)), 3, 4, palette=pal[:16], interlace=True)
    write_png(p("rgba8_interlaced_3x2.png"), content(3, 2, 4), 6, 8, interlace=True)
    write_png(p("gray1_interlaced_1x1.png"), np.array([[1]]), 0, 1, interlace=True)
    # ancillary chunks Pillow ignores for pixels (gAMA, sBIT)
    write_png(p("rgb8_gama_15x15.png"), content(15, 15, 3), 2, 8,
              extra=png_chunk(b"gAMA", struct.pack(">I", 100000)) + png_chunk(b"sBIT", b"\x05\x06\x05"))

    # JPEG: subsampling, progressive, grey, CMYK, YCCK, restart markers, arithmetic, odd sizes
    base = content(101, 67, 3)
    for name, ss in [("444", 0), ("422", 1), ("420", 2)]:
        Image.fromarray(base).save(p(f"jpeg{name}_101x67.jpg"), quality=90, subsampling=ss)
    Image.fromarray(base).save(p("jpeg420_progressive_101x67.jpg"), quality=85, subsampling=2, progressive=True)
    Image.fromarray(base[:, :, 1]).save(p("jpeg_gray_101x67.jpg"), quality=90)
    Image.fromarray(base[:, :, 1]).save(p("jpeg_gray_progressive_101x67.jpg"), quality=90, progressive=True)
    for w, h in [(1, 1), (2, 3), (7, 301), (449, 13), (1000, 37)]:
        Image.fromarray(content(w, h, 3)).save(p(f"jpeg420_{w}x{h}.jpg"), quality=80)
    Image.fromarray(content(41, 23, 4), "CMYK").save(p("jpeg_cmyk_41x23.jpg"), quality=90)
    ycck_jpeg(p("jpeg_ycck_41x23.jpg"), content(41, 23, 4))
    jpegtran(os.path.join(INPUTS, "jpeg420_101x67.jpg"), p("jpeg420_restart1_101x67.jpg"), "-restart", "1")
    jpegtran(os.path.join(INPUTS, "jpeg444_101x67.jpg"), p("jpeg444_restart3B_101x67.jpg"), "-restart", "3B")
    cjpeg(p("jpeg440_101x67.jpg"), base, "-sample", "1x2,1x1,1x1", "-quality", "90")
    cjpeg(p("jpeg411_101x67.jpg"), base, "-sample", "4x1,1x1,1x1", "-quality", "90")
    cjpeg(p("jpeg_arith_101x67.jpg"), base, "-arithmetic", "-quality", "90")
    cjpeg(p("jpeg_rgb_101x67.jpg"), base, "-rgb", "-quality", "90")
    Image.fromarray(base).save(p("jpeg_q5_101x67.jpg"), quality=5)
    Image.fromarray(base).save(p("jpeg_q100_101x67.jpg"), quality=100, subsampling=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 -- Pillow's open() does not apply it
    Image.fromarray(content(30, 20, 3)).save(p("jpeg_exif_rot6_30x20.jpg"), quality=90, exif=exif.tobytes())
    Image.fromarray(content(300, 200, 3)).save(p("jpeg420_300x200.jpg"), quality=75)
    return made


def damaged_inputs():
    """Damaged files whose fate Pillow decides: decoded (then goldens as usual) or refused."""
    made = []

    def p(name):
        made.append(name)
        return os.path.join(INPUTS, name)

    def read(name):
        with open(os.path.join(INPUTS, name), "rb") as f:
            return bytearray(f.read())

    def write(name, data):
        with open(p(name), "wb") as f:
            f.write(bytes(data))

    j = read("jpeg420_101x67.jpg")
    sos = j.find(b"\xff\xda")
    scan = sos + 2 + (j[sos + 2] << 8 | j[sos + 3])
    for k, off in enumerate((40, 300, 900)):  # flipped entropy-coded bytes: libjpeg warns, decodes
        d = bytearray(j)
        d[scan + off] = 0x00 if d[scan + off] == 0xFF else (d[scan + off] ^ 0x5A) & 0xFE or 1
        write(f"damaged_jpeg_flip{k}_101x67.jpg", d)
    d = bytearray(j)  # junk between the scan and EOI: "extraneous bytes before marker"
    write("damaged_jpeg_junk_before_eoi_101x67.jpg", d[:-2] + b"\x01\x02\x03" + d[-2:])
    d = bytearray(j)  # junk after EOI
    write("damaged_jpeg_trailing_junk_101x67.jpg", d + b"trailing bytes after EOI")
    d = bytearray(j)  # a flipped byte, then the file cut: truncation after a corrupt-data warning
    d[scan + 40] ^= 0x5A
    write("damaged_jpeg_flip_then_cut_101x67.jpg", d[: len(d) * 2 // 3])
    r = read("jpeg420_restart1_101x67.jpg")  # junk before the first RST: a warning, then a cut
    rst = r.find(b"\xff\xd0", r.find(b"\xff\xda"))
    d = r[:rst] + b"\x00\x00\x00" + r[rst:]
    write("damaged_jpeg_rst_junk_101x67.jpg", d)
    write("damaged_jpeg_rst_junk_then_cut_101x67.jpg", d[: len(d) * 2 // 3])
    jp = read("jpeg420_progressive_101x67.jpg")
    sos = jp.find(b"\xff\xda")
    d = bytearray(jp)
    d[sos + 60] ^= 0x33
    write("damaged_jpeg_progressive_flip_101x67.jpg", d)

    q = read("rgb8_interlaced_37x29.png")

    def with_chunk_before_idat(data, chunk):
        at = data.find(b"IDAT") - 4
        return data[:at] + chunk + data[at:]

    text = png_chunk(b"tEXt", b"Comment\x00hello")
    bad_text = text[:-1] + bytes([text[-1] ^ 1])
    write("damaged_png_bad_text_crc.png", with_chunk_before_idat(q, bad_text))
    d = bytearray(q)
    at = d.find(b"IDAT")
    length = struct.unpack(">I", d[at - 4:at])[0]
    d[at + 4 + length] ^= 1  # the IDAT CRC
    write("damaged_png_bad_idat_crc.png", d)
    d = bytearray(q)
    d[at + 4 + length // 2] ^= 0x10  # inside the deflate stream
    write("damaged_png_idat_flip.png", d)
    iend = q.rfind(b"IEND") - 4
    write("damaged_png_bad_text_after_idat.png", q[:iend] + bad_text + q[iend:])
    write("damaged_png_trailing_junk.png", q + b"junk after IEND")
    return made


def corrupt_inputs():
    """Files Pillow refuses; written here, checked (Pillow must fail) and committed."""
    made = []

    def p(name):
        made.append(name)
        return os.path.join(INPUTS, name)

    with open(os.path.join(INPUTS, "jpeg420_300x200.jpg"), "rb") as f:
        j = f.read()
    with open(p("bad_jpeg_truncated.jpg"), "wb") as f:
        f.write(j[: len(j) // 2])
    with open(os.path.join(INPUTS, "rgb8_64x48.png"), "rb") as f:
        q = f.read()
    with open(p("bad_png_truncated.png"), "wb") as f:
        f.write(q[: len(q) // 2])
    # IHDR claims 60000x60000: a limit error, never a 10 GB allocation
    write_png(p("bad_png_huge_header.png"), np.zeros((1, 1), np.uint8), 0, 8)
    with open(made[-1] and os.path.join(INPUTS, "bad_png_huge_header.png"), "rb") as f:
        d = bytearray(f.read())
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    d[16:29] = ihdr
    d[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    with open(os.path.join(INPUTS, "bad_png_huge_header.png"), "wb") as f:
        f.write(d)
    # SOF claims 60000x60000
    sof = j.find(b"\xff\xc0")
    jj = bytearray(j)
    jj[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    with open(p("bad_jpeg_huge_header.jpg"), "wb") as f:
        f.write(jj)
    # zero width
    jj = bytearray(j)
    jj[sof + 7:sof + 9] = struct.pack(">H", 0)
    with open(p("bad_jpeg_zero_width.jpg"), "wb") as f:
        f.write(jj)
    with open(p("bad_not_an_image.bin"), "wb") as f:
        f.write(b"GIF89a this is not a supported image")
    return made


# ---------------------------------------------------------------- goldens

def sha(b):
    return hashlib.sha256(b).hexdigest()


def targets_for(w, h):
    t = [(448, 448), (224, 224), (64, 64), (37, 13)]
    if w * h <= 64 * 64:
        t.append((5, 300))
    return t


def expected_name(stem, w, h):
    return f"{stem}_{w}x{h}.png"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    args = ap.parse_args()
    for d in (INPUTS, EXPECTED):
        if os.path.isdir(d):
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
    os.makedirs(EXPECTED, exist_ok=True)
    good = make_inputs()
    damaged = damaged_inputs()
    bad = corrupt_inputs()
    lines = [
        "# Pillow %s goldens for the C image preprocessing, written by tests/reference/gen_image_goldens.py" % PIL.__version__,
        "# decode  INPUT  W H  SHA256(RGB bytes)  [EXPECTED.png]   Image.open(INPUT).convert('RGB')",
        "# resize  INPUT  W H  SHA256(RGB bytes)  [EXPECTED.png]   ...convert('RGB').resize((W, H), Image.BICUBIC)",
        "# error   INPUT                                            Pillow fails to open/load it",
        "# truncate INPUT LEN  ok SHA256 | error                  the first LEN bytes of INPUT",
        "# INPUT is inputs/NAME (committed) or seed:NAME (fixtures/seed-images in the shared folder, may be absent);",
        "# EXPECTED.png (under expected/) holds the full expected pixels for small outputs; '-' when only hashed.",
    ]

    def add_cases(label, path):
        img = Image.open(path).convert("RGB")
        w, h = img.size
        raw = img.tobytes()
        stem = os.path.splitext(os.path.basename(path))[0]
        full = "-"
        if w * h <= SMALL and not label.startswith("seed:"):
            full = expected_name("decoded_" + stem, w, h)
            img.save(os.path.join(EXPECTED, full))
        lines.append(f"decode\t{label}\t{w}\t{h}\t{sha(raw)}\t{full}")
        for tw, th in targets_for(w, h):
            r = img.resize((tw, th), Image.BICUBIC)
            full = "-"
            if tw * th <= SMALL and not label.startswith("seed:"):
                full = expected_name(stem, tw, th)
                r.save(os.path.join(EXPECTED, full))
            lines.append(f"resize\t{label}\t{tw}\t{th}\t{sha(r.tobytes())}\t{full}")

    for name in good:
        add_cases("inputs/" + name, os.path.join(INPUTS, name))
    for name in damaged:
        try:
            Image.open(os.path.join(INPUTS, name)).convert("RGB")
        except Exception as e:  # noqa: BLE001
            why = str(e).replace(INPUTS + "/", "")[:80]
            lines.append(f"error\tinputs/{name}\t# Pillow: {type(e).__name__}: {why}")
        else:
            add_cases("inputs/" + name, os.path.join(INPUTS, name))
    for name in bad:
        try:
            Image.open(os.path.join(INPUTS, name)).convert("RGB")
        except Exception as e:  # noqa: BLE001 - any failure is what we record
            why = str(e).replace(INPUTS + "/", "")[:80]
            lines.append(f"error\tinputs/{name}\t# Pillow: {type(e).__name__}: {why}")
        else:
            sys.exit(f"Pillow opened {name}; it was meant to be a failing case")

    for name in TRUNCATED_INPUTS:
        with open(os.path.join(INPUTS, name), "rb") as f:
            data = f.read()
        n = len(data)
        cuts = sorted({n - k for k in (1, 2, 3, 4, 5, 8, 12, 13, 16, 17, 20, 40)} | {n // 2, n // 3, 200, 60, 30, 8})
        for m in cuts:
            try:
                img = Image.open(io.BytesIO(data[:m])).convert("RGB")
            except Exception:  # noqa: BLE001
                lines.append(f"truncate\tinputs/{name}\t{m}\terror")
            else:
                lines.append(f"truncate\tinputs/{name}\t{m}\tok\t{sha(img.tobytes())}")

    seed_dir = os.path.join(args.shared, "fixtures", "seed-images")
    seeds = sorted(os.listdir(seed_dir)) if os.path.isdir(seed_dir) else []
    if not seeds:
        print("warning: no seed images at", seed_dir, file=sys.stderr)
    for name in seeds:
        add_cases("seed:" + name, os.path.join(seed_dir, name))
    with open(os.path.join(OUT, "goldens.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")

    # normalization: torchvision's ToTensor + Normalize, the exact calls Emu2's transform makes
    import torch
    from torchvision import transforms as T
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    tf = T.Compose([T.ToTensor(), T.Normalize(mean=mean, std=std)])
    ramp = Image.fromarray(np.stack([np.arange(256, dtype=np.uint8)] * 3, -1)[None, :, :])  # 256x1 RGB
    table = tf(ramp).reshape(3, 256).contiguous()
    assert table.dtype == torch.float32
    with open(os.path.join(OUT, "normalize_table.f32"), "wb") as f:
        f.write(table.numpy().astype("<f4").tobytes())
    if os.path.isfile(os.path.join(seed_dir, SEED_FLOAT_IMAGE)):
        full = T.Compose([T.Resize((448, 448), interpolation=T.InterpolationMode.BICUBIC), tf])
        x = full(Image.open(os.path.join(seed_dir, SEED_FLOAT_IMAGE)).convert("RGB"))
        rows = x[:, list(SEED_FLOAT_ROWS), :].contiguous()  # [3, rows, 448]
        with open(os.path.join(OUT, "seed_rows.f32"), "wb") as f:
            f.write(rows.numpy().astype("<f4").tobytes())
        with open(os.path.join(OUT, "seed_rows.txt"), "w") as f:
            f.write(f"# torchvision Resize((448,448), BICUBIC)+ToTensor+Normalize(CLIP) of seed:{SEED_FLOAT_IMAGE};\n"
                    f"# seed_rows.f32 = float32 LE [3][{len(SEED_FLOAT_ROWS)}][448], rows below; tolerance max abs 1e-6\n"
                    f"seed:{SEED_FLOAT_IMAGE}\n" + " ".join(map(str, SEED_FLOAT_ROWS)) + "\n")
    n_dec = sum(1 for l in lines if l.startswith("decode"))
    n_res = sum(1 for l in lines if l.startswith("resize"))
    print(f"{len(good) + len(damaged) + len(bad)} inputs + {len(seeds)} seeds: {n_dec} decode, {n_res} resize, {len(bad)} error cases")


if __name__ == "__main__":
    main()
