"""The PyTorch peer of bench_engine.c: the same measurements on the same model folder with the
reference model (tests/reference/emu2ref: timm EVA + transformers 4.31 LLaMA), eager mode.

    python tests/bench/bench_torch.py MODEL_DIR [--threads T] [--repeats R] [--images N] [--prompt P]
                                      [--steps S] [--batches 1,8] [--dtype f32|bf16] [--only vision,...]

The work matches bench_engine.c: inputs of the same shapes and value scale, the vision tower on a
batch of N images (encode_image: EVA, pool, project_up), prefill of P embeddings returning the
last-position logits only (LlamaModel + lm_head on the last row, as our prefill does), decode steps
of one token per row against the KV cache with last-position logits. One JSON line per measurement.
--dtype: the compute dtype (f32 = the same arithmetic as ours; bf16 = PyTorch's bf16 CPU kernels).
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

from emu2ref.io import load_pretrained  # noqa: E402

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def emit(impl, bench, batch, unit, items, times, threads):
    s = sorted(times)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    rec = {"impl": impl, "bench": bench, "batch": batch, "threads": threads, "unit": unit, "items": items,
           "times_s": [round(t, 6) for t in times], "median_s": round(med, 6), "rate": items / med}
    print(json.dumps(rec), flush=True)
    print(f"{impl:10s} {bench:8s} batch {batch}: {items / med:10.3f} {unit} "
          f"(min {items / s[-1]:.3f} max {items / s[0]:.3f})", file=sys.stderr)


def timed(fn, repeats):
    fn()  # warm-up: first-touch allocations, oneDNN primitive creation
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--only", default="vision,prefill,decode")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = DTYPES[a.dtype]
    impl = f"torch-{a.dtype}"
    t0 = time.perf_counter()
    model, cfg = load_pretrained(a.model, dtype=dtype)
    print(json.dumps({"impl": impl, "bench": "setup", "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "load_s": round(time.perf_counter() - t0, 3)}), flush=True)
    lm = model.lm
    g = torch.Generator().manual_seed(0)
    S, D, V = cfg["vision_config"]["image_size"], cfg["hidden_size"], cfg["vocab_size"]
    with torch.inference_mode():
        if "vision" in a.only:
            px = (torch.rand(a.images, 3, S, S, generator=g) * 4 - 2).to(dtype)
            times = timed(lambda: model.encode_image(px), a.repeats)
            emit(impl, "vision", a.images, "images/s", a.images, times, a.threads)
        if "prefill" in a.only:
            emb = ((torch.rand(1, a.prompt, D, generator=g) * 2 - 1) * 0.05).to(dtype)

            def prefill():
                h = lm.model(inputs_embeds=emb, use_cache=True).last_hidden_state
                return lm.lm_head(h[:, -1])

            emit(impl, "prefill", 1, "tokens/s", a.prompt, timed(prefill, a.repeats), a.threads)
        if "decode" in a.only:
            for rows in [int(b) for b in a.batches.split(",") if b]:
                emb = ((torch.rand(rows, 16, D, generator=g) * 2 - 1) * 0.05).to(dtype)
                ids = [torch.tensor([(7919 * (k + 1) + 104729 * i) % V for i in range(rows)])[:, None]
                       for k in range(a.steps)]
                times = []
                for r in range(a.repeats + 1):  # the first round is the warm-up
                    pkv = lm.model(inputs_embeds=emb, use_cache=True).past_key_values
                    t1 = time.perf_counter()
                    for k in range(a.steps):
                        out = lm.model(input_ids=ids[k], past_key_values=pkv, use_cache=True)
                        pkv = out.past_key_values
                        lm.lm_head(out.last_hidden_state[:, -1])
                    if r:
                        times.append(time.perf_counter() - t1)
                emit(impl, "decode", rows, "tokens/s", a.steps * rows, times, a.threads)


if __name__ == "__main__":
    main()
