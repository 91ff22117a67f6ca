"""gpu_hf_reference.py: the reference side of the GPU benchmark (tests/gpu/run.sh), on the same shapes
as gpu_bench.c, in the same run: Hugging Face transformers' LlamaForCausalLM (the decoder of Emu2)
decoding with its KV cache at each batch, and an EVA-CLIP vision tower written in plain PyTorch
(transformers has no EVA-CLIP), both in bf16 with random weights on the GPU.

    python3 gpu_hf_reference.py CONFIG_JSON [--batches 1,8,32] [--images 1,8] [--steps 32] [--repeats 3]
                                            [--only decode,vision]

One JSON object per line on stdout, like gpu_bench ("bench": "hf_decode" / "torch_vision").
Dev-time only (the GPU machine has torch and transformers); the engine never needs Python."""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F


def emit(bench, batch, unit, rate):
    print(json.dumps({"bench": bench, "batch": batch, "unit": unit, "rate": rate,
                      "device": torch.cuda.get_device_name()}), flush=True)
    print(f"{bench:13s} batch {batch:3d}  {rate:10.2f} {unit}", file=sys.stderr, flush=True)


def bench_decode(cfg, batches, steps, repeats):
    from transformers import LlamaConfig, LlamaForCausalLM
    lc = LlamaConfig(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                     intermediate_size=cfg["intermediate_size"], num_hidden_layers=cfg["num_hidden_layers"],
                     num_attention_heads=cfg["num_attention_heads"],
                     num_key_value_heads=cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
                     max_position_embeddings=cfg.get("max_position_embeddings", 2048),
                     rms_norm_eps=cfg.get("rms_norm_eps", 1e-6), rope_theta=cfg.get("rope_theta", 10000.0),
                     tie_word_embeddings=False)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(lc)
    torch.set_default_dtype(torch.float32)
    model.eval()
    V = cfg["vocab_size"]
    with torch.inference_mode():
        for B in batches:
            ids = torch.randint(0, V, (B, 16), device="cuda")
            best = float("inf")
            for r in range(repeats + 1):
                out = model(input_ids=ids, use_cache=True)
                past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(steps):
                    out = model(input_ids=nxt, past_key_values=past, use_cache=True)
                    past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                torch.cuda.synchronize()
                t = (time.perf_counter() - t0) / steps
                if r > 0:
                    best = min(best, t)
            emit("hf_decode", B, "tokens/s", B / best)
            del past, out
    del model
    torch.cuda.empty_cache()


class EvaBlock(torch.nn.Module):
    def __init__(self, W, I, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(W, eps=1e-6), torch.nn.LayerNorm(W, eps=1e-6)
        self.qkv, self.proj = torch.nn.Linear(W, 3 * W), torch.nn.Linear(W, W)
        self.fc1, self.fc2 = torch.nn.Linear(W, I), torch.nn.Linear(I, W)

    def forward(self, x):
        B, N, W = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, W)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def bench_vision(cfg, images, repeats):
    vc = cfg["vision_config"]
    W, I, L, P, S = vc["width"], vc["intermediate_size"], vc["layers"], vc["patch_size"], vc["image_size"]
    heads = W // vc.get("head_width", 64)
    g = S // P
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        patch = torch.nn.Conv2d(3, W, P, P)
        pos = torch.zeros(1, g * g + 1, W)
        blocks = torch.nn.ModuleList(EvaBlock(W, I, heads) for _ in range(L))
        up = torch.nn.Linear(W, cfg["hidden_size"], bias=False)
    torch.set_default_dtype(torch.float32)
    n_q = int(vc["n_query"] ** 0.5)
    with torch.inference_mode():
        for n in images:
            px = torch.randn(n, 3, S, S, device="cuda", dtype=torch.bfloat16)
            best = float("inf")
            for r in range(repeats + 1):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                x = patch(px).flatten(2).transpose(1, 2)
                x = torch.cat([x.new_zeros(n, 1, W), x], 1) + pos
                for b in blocks:
                    x = b(x)
                grid = x[:, 1:].transpose(1, 2).reshape(n, W, g, g)
                pooled = F.avg_pool2d(grid, g // n_q).flatten(2).transpose(1, 2)
                up(pooled)
                torch.cuda.synchronize()
                if r > 0:
                    best = min(best, time.perf_counter() - t0)
            emit("torch_vision", n, "images/s", n / best)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--images", default="1,8")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="decode,vision")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    torch.manual_seed(0)
    if "vision" in a.only:
        bench_vision(cfg, [int(x) for x in a.images.split(",")], a.repeats)
    if "decode" in a.only:
        bench_decode(cfg, [int(x) for x in a.batches.split(",")], a.steps, a.repeats)


if __name__ == "__main__":
    main()
