"""Writes a deterministic random Emu2-architecture model of about 1B parameters for the benchmarks.

    python tests/bench/make_random_model.py [OUT_DIR] [--dtype bf16|f32]

OUT_DIR defaults to $EMU2_BENCH_DIR/emu2-random-1b-<dtype> ($EMU2_BENCH_DIR defaults to /tmp/emu2-bench).
The folder is a cache outside the repository (about 2 GB in bf16); it is rebuilt only when missing.
Shapes (EMU2-SPEC.md's architecture, smaller):
  EVA     224/14 (16x16 grid, 257 tokens), width 1024, 24 post-norm blocks, MLP 4096, head 64  ~ 0.30 B
  pooling n_query 64 (2x2 average pool), project_up 1024 -> 2048
  LLaMA   hidden 2048, 12 layers, 16 heads, MLP 5632, vocab 32272 (32000 + Emu2's 272 added)  ~ 0.75 B
Weights are stored in bf16 by default, as the published Emu2 checkpoints are.
"""
import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

from emu2ref.config import make_config  # noqa: E402
from emu2ref.io import save_pretrained  # noqa: E402
from emu2ref.model import build_model, randomize_  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32}


def bench_config():
    return make_config(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=12, num_attention_heads=16,
        vocab_size=32272, max_position_embeddings=2048, name="emu2-random-1b",
        vision=dict(image_size=224, patch_size=14, width=1024, layers=24, head_width=64,
                    intermediate_size=4096, n_query=64),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    a = ap.parse_args()
    root = os.environ.get("EMU2_BENCH_DIR", "/tmp/emu2-bench")
    out = a.out or os.path.join(root, f"emu2-random-1b-{a.dtype}")
    if os.path.exists(os.path.join(out, "config.json")):
        print(f"{out}: already there")
        return
    t0 = time.time()
    torch.manual_seed(0)
    cfg = bench_config()
    model = randomize_(build_model(cfg, seed=0), seed=0)
    n = sum(p.numel() for p in model.parameters())
    tmp = out + ".partial"
    save_pretrained(model, cfg, tmp, dtype=DTYPES[a.dtype])
    os.replace(tmp, out)  # only a complete folder ever has the final name
    print(f"{out}: {n / 1e9:.3f} B parameters ({a.dtype}) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
