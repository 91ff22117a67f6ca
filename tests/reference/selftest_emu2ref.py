"""Self-test for emu2ref: random tiny model, save in fmt x naming (and sharded / bf16), reload, same logits."""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emu2ref as E  # noqa: E402

FIX = os.environ.get("EMU2_FIXTURES", "/work/shared/fixtures")


def manual_eva(sd, cfg, pixels):
    """§3.2 written out from the HF tensors alone, to check that timm's Eva computes exactly that."""
    import torch.nn.functional as F
    v = cfg["vision_config"]
    p, w, eps = v["patch_size"], v["width"], v["layer_norm_eps"]
    nh = w // v["head_width"]
    pre = "model.visual."
    x = F.conv2d(pixels, sd[pre + "patch_embed.proj.weight"], sd[pre + "patch_embed.proj.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[pre + "cls_token"].expand(x.shape[0], -1, -1), x], 1) + sd[pre + "pos_embed"]
    for i in range(v["layers"]):
        b = f"{pre}blocks.{i}."
        qkv = x @ sd[b + "attn.qkv.weight"].T + sd[b + "attn.qkv.bias"]
        B, T, _ = qkv.shape
        q, k, vv = qkv.reshape(B, T, 3, nh, -1).permute(2, 0, 3, 1, 4)
        att = ((q * v["head_width"] ** -0.5) @ k.transpose(-1, -2)).softmax(-1)
        a = (att @ vv).transpose(1, 2).reshape(B, T, w) @ sd[b + "attn.proj.weight"].T + sd[b + "attn.proj.bias"]
        x = x + F.layer_norm(a, (w,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps)
        h = F.gelu(x @ sd[b + "mlp.fc1.weight"].T + sd[b + "mlp.fc1.bias"])
        m = h @ sd[b + "mlp.fc2.weight"].T + sd[b + "mlp.fc2.bias"]
        x = x + F.layer_norm(m, (w,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps)
    return x


def main():
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="emu2ref-")
    tokdir = os.path.join(tmp, "tok")
    vocab = E.write_tokenizer_files(os.path.join(FIX, "llama-tokenizer/tokenizer.model"), tokdir, "base")
    assert vocab == 32272, vocab  # 32000 + 272 added tokens, as published
    tok = E.load_tokenizer(tokdir)
    assert tok.convert_tokens_to_ids("[PAD]") == 32000 and tok.convert_tokens_to_ids("<image>") == 32003
    assert tok.convert_tokens_to_ids("[gIMG]") == 32004 and tok.convert_tokens_to_ids("<patch_index_0256>") == 32271
    print("tokenize:", tok.tokenize("[IMG]<image>[/IMG] Describe the image in details:"))
    cfg = E.make_config(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                        vocab_size=32272, pad_token_id=32000,
                        vision=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16,
                                    intermediate_size=80, n_query=4))
    model = E.randomize_(E.build_model(cfg, seed=0), seed=1)
    img = os.path.join(FIX, "seed-images/red_white_3_bottom_left.jpg")
    img2 = os.path.join(FIX, "seed-images/blue_black_1_top_left.jpg")
    prompts = ["[<IMG_PLH>]Describe the image in details:", "a [] and []"]
    ref, ids, _ = E.first_step_logits(model, tok, cfg, prompts, [img, img, img2])
    assert ref.shape == (2, 32272)
    hf = E.hf_state_dict(model)
    assert "model.visual.blocks.0.attn.qkv.bias" in hf and "model.decoder.lm.lm_head.weight" in hf
    assert not any("inv_freq" in k or "q_bias" in k for k in hf)
    for fmt in ("safetensors", "bin"):
        for naming in ("hf", "native"):
            for shard in (None, 200_000):
                d = os.path.join(tmp, f"{fmt}-{naming}-{shard}")
                names = E.save_pretrained(model, cfg, d, tokenizer_dir=tokdir, fmt=fmt, naming=naming,
                                          max_shard_bytes=shard)
                m2, cfg2 = E.load_pretrained(d)
                got, _, _ = E.first_step_logits(m2, E.load_tokenizer(d), cfg2, prompts, [img, img, img2])
                diff = (got - ref).abs().max().item()
                print(f"{fmt:12s} {naming:7s} shards={len(names):2d} max|dlogit|={diff:.3g}")
                assert diff == 0.0, diff
    d = os.path.join(tmp, "bf16")
    E.save_pretrained(model, cfg, d, fmt="safetensors", naming="hf", dtype=torch.bfloat16)
    m3, _ = E.load_pretrained(d)
    got, _, _ = E.first_step_logits(m3, tok, cfg, prompts, [img, img, img2])
    print("bf16 weights: max|dlogit| =", (got - ref).abs().max().item())
    try:
        E.first_step_logits(model, tok, cfg, prompts, [img, img])
        raise AssertionError("count mismatch not detected")
    except ValueError as e:
        print("count check:", e)
    out = E.generate(model, tok, cfg, prompts, [img, img, img2], max_new_tokens=5)
    print("generate:", out["ids"])
    vb = E.vision_block_outputs(model, cfg, [img])
    assert vb["final"].shape == (1, 17, 32) and vb["pooled"].shape == (1, 4, 32) and len(vb["blocks"]) == 2
    sd = E.hf_state_dict(model)
    man = manual_eva(sd, cfg, vb["pixels"])
    d = (man - vb["final"]).abs().max().item()
    print("timm Eva vs hand-written §3.2: max diff", d)
    assert d < 1e-4, d
    print("chat:", E.chat_prompt_native(["[<IMG_PLH>]describe the image in details:"]))
    print("OK")


if __name__ == "__main__":
    main()
