"""Emu2-Gen reference pieces (dev-time only): tiny decoder configs, the regression loop, the denoising loop.

The UNet, VAE and scheduler are diffusers 0.24 classes built from the published Emu2-Gen configs with only
sizes shrunk (same block types, same conditioning). The LLM regression loop and the pipeline loop are
written here in plain PyTorch from EMU2-SPEC.md section 6 and the published generate_image / pipeline code,
on top of the emu2ref model (transformers LLaMA + timm EVA).
"""
import json
import math
import os

import numpy as np
import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

def _fixtures():
    """$EMU2_FIXTURES, else tests/data/fixtures when the repo carries them, else the shared folder."""
    env = os.environ.get("EMU2_FIXTURES")
    if env:
        return env
    local = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "tests", "data", "fixtures")
    return local if os.path.isdir(os.path.join(local, "emu2-gen-configs")) else "/work/shared/fixtures"


PUBLISHED_DIR = os.path.join(_fixtures(), "emu2-gen-configs")


def published(name):
    fn = "scheduler_config.json" if name == "scheduler" else "config.json"
    with open(os.path.join(PUBLISHED_DIR, name, fn), encoding="utf-8") as f:
        return json.load(f)


def tiny_unet_config(cross_dim, *, addition_time_embed_dim=8):
    """The published UNet config, same keys and topology, only sizes shrunk.

    Kept: block types, text_time addition embedding, linear projections, attention_head_dim read as
    head counts (num_attention_heads null), flip_sin_to_cos, freq_shift 0, layers_per_block 2, 3 levels,
    transformer_layers_per_block per level (level 0 unused by DownBlock2D, mid uses the last entry,
    up blocks use the list reversed), cross_attention_dim = encoder vision width,
    projection_class_embeddings_input_dim = width + 6 * addition_time_embed_dim.
    """
    c = published("unet")
    c.update({
        "_name_or_path": "tests/models/gen-tiny/unet",
        "_diffusers_version": "0.24.0",
        # distinct widths per level, so skip concatenations differ as in the published
        # (2560, 2560, 1920 | 1920, 1280, 960 | 960, 640, 640) -> (64, 64, 56 | 56, 48, 40 | 40, 32, 32)
        "block_out_channels": [16, 24, 32],
        "attention_head_dim": [1, 2, 2],  # head counts (the diffusers quirk): head dim 12 and 16
        "norm_num_groups": 8,
        "transformer_layers_per_block": [1, 2, 3],  # like (1, 2, 10): level 1 > 1, level 2 differs
        "cross_attention_dim": cross_dim,
        "addition_time_embed_dim": addition_time_embed_dim,
        "projection_class_embeddings_input_dim": cross_dim + 6 * addition_time_embed_dim,
        "sample_size": 8,
    })
    return c


def tiny_vae_config():
    """SDXL VAE topology (4 levels, 2 layers per block, scaling_factor 0.13025), tiny channels."""
    c = published("vae")
    c.update({
        "_name_or_path": "tests/models/gen-tiny/vae",
        "_diffusers_version": "0.24.0",
        "block_out_channels": [8, 16, 24, 24],  # like (128, 256, 512, 512): shortcuts in up blocks 2 and 3
        "norm_num_groups": 8,
        "sample_size": 64,
    })
    return c


def _model_kwargs(cfg):
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


@torch.no_grad()
def randomize_diffusers_(module, seed):
    """Seeded weights with non-trivial norm affines and biases, so a port that drops any tensor fails."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters()):
        r = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if p.dim() == 1 and "norm" in name:
            p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * r)
        elif p.dim() == 1:
            p.copy_(0.05 * r)
        else:
            p.copy_(r / math.sqrt(p[0].numel()))
    return module


def build_unet(cfg, seed):
    torch.manual_seed(seed)
    return randomize_diffusers_(UNet2DConditionModel.from_config(_model_kwargs(cfg)), seed).eval()


def build_vae(cfg, seed):
    torch.manual_seed(seed)
    return randomize_diffusers_(AutoencoderKL.from_config(_model_kwargs(cfg)), seed).eval()


WEIGHTS_NAME = "diffusion_pytorch_model.bf16.safetensors"  # the published Emu2-Gen file name


def save_component(module, cfg, folder):
    """config.json (published key set) + bf16 safetensors under the published file name."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in module.state_dict().items()}
    save_file(sd, os.path.join(folder, WEIGHTS_NAME), metadata={"format": "pt"})


def load_component(cls, folder):
    """Load what save_component wrote; weights upcast to float32 (all reference math is float32)."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    m = cls.from_config(_model_kwargs(cfg))
    sd = {k: v.float() for k, v in load_file(os.path.join(folder, WEIGHTS_NAME)).items()}
    m.load_state_dict(sd, strict=True)
    return m.float().eval()


def make_scheduler(folder):
    return EulerDiscreteScheduler.from_pretrained(folder)


def spec_schedule(num_steps, cfg):
    """Independent float64 recomputation of EMU2-SPEC 6.5 (leading spacing, linear interpolation)."""
    n = cfg["num_train_timesteps"]
    b = np.linspace(math.sqrt(cfg["beta_start"]), math.sqrt(cfg["beta_end"]), n, dtype=np.float64) ** 2
    ac = np.cumprod(1.0 - b)
    sig = np.sqrt((1 - ac) / ac)
    ts = np.arange(num_steps)[::-1] * (n // num_steps) + cfg["steps_offset"]
    s = np.concatenate([sig[ts], [0.0]])
    return ts.astype(np.float64), s, math.sqrt(s.max() ** 2 + 1)


# ---------------------------------------------------------------- UNet conditioning / denoising (spec 6.2, 6.5)

def added_conditions(cond, time_ids):
    """cond [B,64,W] in CFG order [cond, uncond]; time_ids: 6 ints, repeated per batch row as a 1-D
    LongTensor exactly as the published pipeline passes it (diffusers flattens and reshapes)."""
    tid = torch.tensor(list(time_ids) * cond.shape[0], dtype=torch.long)
    return {"text_embeds": cond.mean(dim=1), "time_ids": tid}


@torch.no_grad()
def unet_eps(unet, sample, t, cond, time_ids, emb_out=None):
    """One UNet call as the pipeline makes it (t a float32 scheduler timestep). emb_out (list) receives
    temb + aug, the vector every resnet's time_emb_proj sees (before its SiLU)."""
    hooks = []
    if emb_out is not None:
        store = {}
        hooks.append(unet.time_embedding.register_forward_hook(lambda m, i, o: store.__setitem__("t", o)))
        hooks.append(unet.add_embedding.register_forward_hook(lambda m, i, o: store.__setitem__("a", o)))
    try:
        t = torch.tensor(float(t), dtype=torch.float32)
        out = unet(sample, t, encoder_hidden_states=cond,
                   added_cond_kwargs=added_conditions(cond, time_ids)).sample
    finally:
        for h in hooks:
            h.remove()
    if emb_out is not None:
        emb_out.append(store["t"] + store["a"])
    return out


def sinusoid(x, dim):
    """EMU2-SPEC 6.3: freqs exp(-ln(1e4) * i / (dim/2)), i < dim/2, emitted as [cos, sin] (flip_sin_to_cos)."""
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = x.float()[:, None] * f[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


@torch.no_grad()
def emb_from_spec(unet, t, cond, time_ids):
    """temb + aug written from the spec formulas and the raw weights (checks diffusers' reading of the
    config: head-count quirk aside, this is where flip_sin_to_cos / freq_shift / text_time live)."""
    c = unet.config
    silu = torch.nn.functional.silu
    te = unet.time_embedding
    tt = sinusoid(torch.full((cond.shape[0],), float(t)), c.block_out_channels[0])
    temb = te.linear_2(silu(te.linear_1(tt)))
    ids = torch.tensor(list(time_ids) * cond.shape[0], dtype=torch.float32)
    tid = sinusoid(ids, c.addition_time_embed_dim).reshape(cond.shape[0], -1)
    ae = unet.add_embedding
    aug = ae.linear_2(silu(ae.linear_1(torch.cat([cond.mean(dim=1), tid], dim=-1))))
    return temb + aug


def to_uint8_hwc(img01):
    """Published numpy_to_pil: (x * 255).round().astype(uint8) on the clamped [0,1] image, NHWC."""
    return torch.from_numpy((img01.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))


@torch.no_grad()
def vae_decode(vae, latents):
    """Published decode_latents: z / scaling_factor -> decoder -> clamp(x/2+0.5, 0, 1).
    Returns (decoder output x in about [-1,1], uint8 NHWC image)."""
    x = vae.decode(latents / vae.config.scaling_factor).sample
    return x, to_uint8_hwc((x / 2 + 0.5).clamp(0, 1))


@torch.no_grad()
def denoise(unet, scheduler, cond, noise, steps, guidance, time_ids, trace=None):
    """The published pipeline loop (native diffusion.py / HF pipeline_emu2_gen.py), float32.

    noise: the unscaled N(0,1) initial latents [1,4,h,w]; cond: [2,64,W] = [cond, uncond].
    trace (list) receives the latents after every step. Returns the final latents.
    """
    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma
    use_cfg = guidance > 1.0
    added = added_conditions(cond, time_ids)
    for t in scheduler.timesteps:
        x_in = torch.cat([latents] * 2) if use_cfg else latents
        x_in = scheduler.scale_model_input(x_in, t)
        eps = unet(x_in, t, encoder_hidden_states=cond, added_cond_kwargs=added).sample
        if use_cfg:
            e_c, e_u = eps.chunk(2)
            eps = e_u + guidance * (e_c - e_u)
        latents = scheduler.step(eps, t, latents).prev_sample
        if trace is not None:
            trace.append(latents.clone())
    return latents


@torch.no_grad()
def denoise_spec(unet, cond, noise, steps, guidance, time_ids, sched_cfg):
    """The same loop from the EMU2-SPEC 6.5 formulas only (float64 schedule, x += (s_next - s) * eps)."""
    ts, sig, init = spec_schedule(steps, sched_cfg)
    x = noise.double() * init
    added = added_conditions(cond, time_ids)
    for i, t in enumerate(ts):
        x_in = (x / math.sqrt(sig[i] ** 2 + 1)).to(cond.dtype)
        x_in = torch.cat([x_in] * 2)
        eps = unet(x_in, torch.tensor(float(t)), encoder_hidden_states=cond, added_cond_kwargs=added).sample
        e_c, e_u = eps.double().chunk(2)
        x = x + (sig[i + 1] - sig[i]) * (e_u + guidance * (e_c - e_u))
    return x.to(cond.dtype)


# ---------------------------------------------------------------- LLM visual regression (spec 6.1)

def _trailing_count(mask):
    """For each position: how many True entries lie at or after it (the published flip-cumsum-flip)."""
    return torch.flip(torch.cumsum(torch.flip(mask.long(), dims=[1]), dim=1), dims=[1])


@torch.no_grad()
def regression_full(model, tokenizer, text, pixels, n_query, img_tok="<image>", boi_tok="[IMG]"):
    """The published 64-full-forward loop (generate_image), no KV cache, batch 1.

    text: the prompt with placeholders already expanded; pixels: [N,3,s,s] prompt images or None.
    Iteration j tokenizes text + [IMG] + <image>*j (BOS added), splices the prompt images into all but
    the last j <image> slots and project_up(v_0..v_{j-1}) into the last j, runs LlamaModel, and maps the
    final (normed) hidden states at the last j+1 [IMG]/<image> positions through project_down.
    Returns (v [n_query, width], input_ids of iteration 0).
    """
    lm = model.lm.model
    img_id, boi_id = tokenizer.convert_tokens_to_ids([img_tok, boi_tok])
    prompt_rows = None
    if pixels is not None:
        prompt_rows = model.encode_image(pixels).reshape(-1, model.project_up.out_features)
    v, ids0 = None, None
    for j in range(n_query):
        text = text + (boi_tok if j == 0 else img_tok)
        ids = tokenizer([text], return_tensors="pt").input_ids
        if j == 0:
            ids0 = ids[0].clone()
        emb = lm.embed_tokens(ids)
        is_img = ids == img_id
        after = _trailing_count(is_img)
        if prompt_rows is not None:
            emb[is_img & (after > j)] = prompt_rows
        if v is not None:
            emb[is_img & (after > 0) & (after <= j)] = model.project_up(v)
        out = lm(inputs_embeds=emb, attention_mask=torch.ones_like(ids), output_hidden_states=True,
                 return_dict=True)
        is_tgt = (ids == img_id) | (ids == boi_id)
        after = _trailing_count(is_tgt)
        h = out.hidden_states[-1][is_tgt & (after > 0) & (after <= j + 1)]
        v = model.project_down(h.reshape(-1, h.shape[-1]))
    return v, ids0


@torch.no_grad()
def regression_kv(model, tokenizer, ids0, pixels, n_query, img_tok="<image>"):
    """The efficient form: prefill BOS+S+[IMG] (prompt images spliced), then n_query-1 one-position
    decode steps feeding project_up(v_{j-1}) with the KV cache. Returns v [n_query, width]."""
    lm = model.lm.model
    img_id = tokenizer.convert_tokens_to_ids(img_tok)
    ids = ids0[None]
    emb = lm.embed_tokens(ids)
    if pixels is not None:
        emb[ids == img_id] = model.encode_image(pixels).reshape(-1, model.project_up.out_features)
    out = lm(inputs_embeds=emb, use_cache=True, return_dict=True)
    past, pos = out.past_key_values, ids.shape[1]
    vs = [model.project_down(out.last_hidden_state[0, -1:])]
    for _ in range(1, n_query):
        out = lm(inputs_embeds=model.project_up(vs[-1])[None], past_key_values=past, use_cache=True,
                 position_ids=torch.tensor([[pos]]), return_dict=True)
        past, pos = out.past_key_values, pos + 1
        vs.append(model.project_down(out.last_hidden_state[0, -1:]))
    return torch.cat(vs, 0)


@torch.no_grad()
def autoencode_conditions(model, pixels):
    """Autoencoding mode: cond = pool(EVA(image)) (no LLM, no project_up); negative = the same of an
    all-zero *normalized* tensor. Returns ([n_query,W], [n_query,W])."""
    cond = model.pool(model.vision_tower(pixels))[0]
    neg = model.pool(model.vision_tower(torch.zeros_like(pixels)))[0]
    return cond, neg
