"""Emu2 module tree: model.visual (timm Eva), model.decoder.lm (transformers LLaMA), project_up/down.

Internal state_dict names are timm's native EVA names (attn.q_bias / attn.v_bias, k bias is a zero
non-persistent buffer); io.py maps them to the published HF names (fused attn.qkv.bias).
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.eva import Eva
from transformers import LlamaForCausalLM

from .config import llama_config_from, pool_kernel


def build_visual(cfg):
    """EVA-CLIP-E as timm expresses it (EMU2-SPEC §3).

    timm covers: EvaBlockPostNorm (x + norm1(attn(x)), x + norm2(mlp(x))), fused qkv weight with
    q_bias / zero k_bias buffer / v_bias, plain Mlp with nn.GELU() (exact erf), learned pos_embed incl.
    CLS, no rope (use_rot_pos_emb=False), no layer scale (init_values=None).
    Not expressible by constructor args: with global_pool='' timm creates a final LayerNorm
    (self.norm) that EVA-CLIP-E does not have -> replaced by nn.Identity below (one line of plain
    PyTorch). num_classes=0 gives no head.
    """
    v = cfg["vision_config"]
    width, inter = v["width"], v["intermediate_size"]
    # timm computes hidden = int(width * mlp_ratio); nudge so the int() lands on the exact size.
    mlp_ratio = (inter + 0.5) / width
    eva = Eva(
        img_size=v["image_size"], patch_size=v["patch_size"], in_chans=3, num_classes=0, global_pool="",
        embed_dim=width, depth=v["layers"], num_heads=width // v["head_width"], qkv_bias=True,
        qkv_fused=True, mlp_ratio=mlp_ratio, swiglu_mlp=False, scale_mlp=False, scale_attn_inner=False,
        norm_layer=partial(nn.LayerNorm, eps=v.get("layer_norm_eps", 1e-6)), init_values=None,
        class_token=True, use_abs_pos_emb=True, use_rot_pos_emb=False, use_post_norm=True,
    )
    eva.norm = nn.Identity()  # EVA-CLIP-E returns the raw residual stream: no final norm
    assert eva.blocks[0].mlp.fc1.out_features == inter
    assert eva.blocks[0].attn.k_bias is not None
    assert isinstance(eva.blocks[0].mlp.act, nn.GELU) and eva.blocks[0].mlp.act.approximate == "none"
    return eva


class _Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.lm = LlamaForCausalLM(llama_config_from(cfg))


class _Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.visual = build_visual(cfg)
        self.decoder = _Decoder(cfg)


class Emu2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        width, hidden = cfg["vision_config"]["width"], cfg["hidden_size"]
        self.model = _Inner(cfg)
        self.project_up = nn.Linear(width, hidden, bias=False)
        self.project_down = nn.Linear(hidden, width, bias=False)

    @property
    def visual(self):
        return self.model.visual

    @property
    def lm(self):
        return self.model.decoder.lm

    def vision_tower(self, pixels, return_blocks=False):
        """pixels [B,3,s,s] -> raw residual stream [B, 1+grid^2, width] (and per-block outputs)."""
        eva = self.visual
        pixels = pixels.to(eva.patch_embed.proj.weight.dtype)
        x = eva.patch_embed(pixels)
        x, rope = eva._pos_embed(x)
        assert rope is None
        outs = []
        for blk in eva.blocks:
            x = blk(x)
            if return_blocks:
                outs.append(x)
        x = eva.norm(x)  # Identity
        return (x, outs) if return_blocks else x

    def pool(self, feats, n_query=None):
        """§3.3: drop CLS, channel-major grid, avg_pool2d(k, k), flatten row-major -> [B, n_query, width]."""
        b, t, c = feats.shape
        g = int(round((t - 1) ** 0.5))
        f = feats[:, 1:, :].transpose(1, 2).reshape(b, c, g, g)
        k = pool_kernel(self.cfg, n_query)
        f = F.avg_pool2d(f, kernel_size=k, stride=k)
        return f.flatten(2).transpose(1, 2)

    def encode_image(self, pixels, n_query=None):
        """[B,3,s,s] -> project_up(pool(EVA)) = [B, n_query, hidden]."""
        return self.project_up(self.pool(self.vision_tower(pixels), n_query))


def build_model(cfg, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    m = Emu2Model(cfg)
    m.eval()
    return m


@torch.no_grad()
def randomize_(model, seed=0, std=0.02):
    """Fill every parameter with seeded random values (incl. LN/RMSNorm weights around 1 and non-zero
    biases) so goldens exercise every tensor. The zero k bias stays zero (it is not a parameter)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        r = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if name.endswith("norm.weight") or ".norm1.weight" in name or ".norm2.weight" in name or \
                name.endswith("layernorm.weight"):
            val = 1.0 + 0.1 * r
        elif name.endswith("cls_token") or name.endswith("pos_embed"):
            val = 0.5 * r
        elif name.endswith("bias"):
            val = 0.1 * r
        else:
            val = std * r if p.dim() < 2 else r / (p.shape[1] if p.dim() == 2 else p[0].numel()) ** 0.5
        p.copy_(val.to(p.dtype))
    return model
