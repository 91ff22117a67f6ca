"""gen_ops_goldens.py: goldens for the op interface, computed by the real PyTorch / transformers 4.31 code
(not by formulas restated here), so the C ops are checked against the conventions they must match:
HF rotate-half RoPE (LlamaRotaryEmbedding + apply_rotary_pos_emb), LlamaRMSNorm, LayerNorm, exact GELU,
SiLU, softmax, the 4.31 causal + padding masks (_make_causal_mask, _expand_mask), Emu2's
encode_image pooling (drop CLS, permute to channel-major, avg_pool2d, back to tokens) and the ViT
patch-embedding convolution.

Output: tests/data/ops/goldens.bin, a sequence of records
    u32 name_len, name (ASCII), u32 count, count x f32   (all little-endian)
Run: /work/venv-ref/bin/python tests/reference/gen_ops_goldens.py   (deterministic: fixed seed, CPU, f32)
"""
import os
import struct

import torch
import torch.nn.functional as F
from transformers.models.llama import modeling_llama as hf

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "ops", "goldens.bin")


def main():
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    recs = []

    def put(name, t):
        recs.append((name, t.detach().to(torch.float32).contiguous().reshape(-1)))

    # RoPE: 5 rows, 2 heads x 16; positions past 2048 make HF grow its cos/sin cache
    rows, heads, hd = 5, 2, 16
    pos = torch.tensor([0, 1, 7, 300, 3000])
    x = torch.randn(1, heads, rows, hd)  # [bs, heads, seq, hd] as HF lays q out
    put("rope.x", x[0].transpose(0, 1))  # engine layout: [rows, heads*hd]
    put("rope.pos", pos.float())
    for suffix, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        rot = hf.LlamaRotaryEmbedding(hd, max_position_embeddings=2048, base=10000)
        # the cache as HF builds it for this dtype (bf16: cos/sin rounded); math then in f32
        cos, sin = rot(x.to(dtype), seq_len=int(pos.max()) + 1)
        q, _ = hf.apply_rotary_pos_emb(x, x, cos.float(), sin.float(), pos[None, :])
        put("rope.out_" + suffix, q[0].transpose(0, 1))

    # RMSNorm and LayerNorm (eps 1e-6), width 40
    xn = torch.randn(3, 40) * 3 + 5
    rms = hf.LlamaRMSNorm(40, eps=1e-6)
    with torch.no_grad():
        rms.weight.copy_(torch.randn(40))
    put("rmsnorm.x", xn)
    put("rmsnorm.w", rms.weight)
    put("rmsnorm.out", rms(xn))
    ln = torch.nn.LayerNorm(40, eps=1e-6)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(40))
        ln.bias.copy_(torch.randn(40))
    put("layernorm.w", ln.weight)
    put("layernorm.b", ln.bias)
    put("layernorm.out", ln(xn))

    # activations and row softmaxes
    a = torch.linspace(-8, 8, 97)
    b = torch.randn(97)
    put("act.a", a)
    put("act.b", b)
    put("act.gelu", F.gelu(a))  # approximate='none': the erf form EVA uses
    put("act.silu_mul", F.silu(a) * b)
    s = torch.randn(2, 50) * 10
    put("softmax.x", s)
    put("softmax.out", torch.softmax(s, dim=-1))
    put("softmax.log", torch.log_softmax(s, dim=-1))

    # causal attention with left padding, the transformers 4.31 way: additive finfo.min masks
    B, H, T, D = 2, 2, 6, 8
    q, k, v = torch.randn(B, H, T, D), torch.randn(B, H, T, D), torch.randn(B, H, T, D)
    attn_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    mask = hf._make_causal_mask((B, T), torch.float32, torch.device("cpu"), 0)
    mask = mask + hf._expand_mask(attn_mask, torch.float32, tgt_len=T)
    w = q @ k.transpose(2, 3) / D**0.5 + mask
    w = torch.max(w, torch.tensor(torch.finfo(w.dtype).min))
    o = torch.softmax(w, dim=-1, dtype=torch.float32) @ v
    for name, t in (("attn.q", q), ("attn.k", k), ("attn.v", v), ("attn.out", o)):
        put(name, t.transpose(1, 2))  # engine layout: [B, T, H*D]
    put("attn.mask", attn_mask.float())

    # Emu2 encode_image pooling on a 4x4 grid (+CLS), 6 channels, k=2 (n_query 4)
    feats = torch.randn(1, 17, 6)
    f = feats[:, 1:, :]
    bsz, n, c = f.shape
    side = int(n**0.5)
    f = f.permute(0, 2, 1).reshape(bsz, c, side, side)
    f = F.avg_pool2d(f, kernel_size=(2, 2), stride=2)
    f = f.view(bsz, c, -1).permute(0, 2, 1).contiguous()
    put("pool.x", feats[0])
    put("pool.out", f[0])

    # ViT patch embedding: Conv2d(k = stride = 4) on a [3, 8, 12] image, tokens row-major as EVA flattens them
    conv = torch.nn.Conv2d(3, 4, kernel_size=4, stride=4)
    img = torch.randn(1, 3, 8, 12)
    put("conv.img", img[0])
    put("conv.w", conv.weight)  # [4, 3, 4, 4] = [O, C*p*p] flattened
    put("conv.b", conv.bias)
    put("conv.out", conv(img).flatten(2).transpose(1, 2)[0])  # [6, 4]

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as fh:
        for name, t in recs:
            nb = name.encode("ascii")
            fh.write(struct.pack("<I", len(nb)) + nb + struct.pack("<I", t.numel()))
            fh.write(t.numpy().astype("<f4").tobytes())
    print(f"wrote {OUT}: {len(recs)} records, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
