"""Check tests/reference/goldens/gen against tests/models/gen-tiny, the way an engine test would use them.

python tests/reference/emu2gen_ref_verify.py [--model-dir DIR] [--goldens-dir DIR]

1. Loads the tiny Emu2-Gen folder through the standard loaders (diffusers from_pretrained with
   variant="bf16", emu2ref.load_pretrained over the bf16 shard index), recomputes every golden family
   from the stored inputs and compares with the manifest tolerances.
2. Mutation checks: common porting mistakes (EMU2-SPEC section 8) must FAIL the same comparisons, so the
   goldens and tolerances are known to have teeth.
Exit status 0 when every comparison passes and every mutation is caught.
"""
import argparse
import copy
import json
import os
import sys

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import emu2ref as E  # noqa: E402
import emu2gen_ref as G  # noqa: E402


def within(got, ref, tol):
    got, ref = got.to(torch.float64), ref.to(torch.float64)
    if got.shape != ref.shape:
        return False, f"shape {tuple(got.shape)} != {tuple(ref.shape)}"
    d = float((got - ref).abs().max()) if ref.numel() else 0.0
    kind = tol["kind"]
    if kind == "exact":
        lim = 0.0
    elif kind == "max_abs":
        lim = tol["value"]
    elif kind == "max_abs_over_ref_max_abs":
        lim = tol["value"] * float(ref.abs().max())
    else:
        raise ValueError(kind)
    return d <= lim, f"max|d|={d:.3g} limit={lim:.3g}"


class Checker:
    def __init__(self, gdir):
        with open(os.path.join(gdir, "manifest.json"), encoding="utf-8") as f:
            self.man = json.load(f)
        self.t = load_file(os.path.join(gdir, self.man["tensors_file"]))
        self.tol = {e["name"]: e["tolerance"] for e in self.man["tensors"]}
        self.failures = 0

    def ok(self, name, got):
        good, msg = within(got, self.t[name], self.tol[name])
        return good, msg

    def expect_pass(self, name, got):
        good, msg = self.ok(name, got)
        print(f"{'PASS' if good else 'FAIL'} {name}: {msg}")
        self.failures += not good

    def expect_fail(self, what, name, got):
        good, msg = self.ok(name, got)
        print(f"{'CAUGHT' if not good else 'MISSED'} mutation '{what}' on {name}: {msg}")
        self.failures += good


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "tests", "models", "gen-tiny"))
    ap.add_argument("--goldens-dir", default=os.path.join(ROOT, "tests", "reference", "goldens", "gen"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    c = Checker(args.goldens_dir)
    T, S = c.t, c.man["settings"]
    d = args.model_dir

    unet = UNet2DConditionModel.from_pretrained(os.path.join(d, "unet"), variant="bf16").float().eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(d, "vae"), variant="bf16").float().eval()
    sched = EulerDiscreteScheduler.from_pretrained(os.path.join(d, "scheduler"))
    enc, cfg = E.load_pretrained(os.path.join(d, "multimodal_encoder"))
    tok = E.load_tokenizer(os.path.join(d, "tokenizer"))
    nq = cfg["vision_config"]["n_query"]

    # scheduler
    for steps in (50, S["pipe_steps"], 7):
        sched.set_timesteps(steps)
        c.expect_pass(f"sched.steps{steps}.timesteps", sched.timesteps)
        c.expect_pass(f"sched.steps{steps}.sigmas", sched.sigmas)
        c.expect_pass(f"sched.steps{steps}.init_noise_sigma", torch.tensor([float(sched.init_noise_sigma)]))

    # regression (KV-cache form, from the stored ids) and autoencoding conditions
    png = os.path.join(args.goldens_dir, c.man["input_image"]["file"])
    px = E.preprocess(E.load_rgb(png), cfg["vision_config"]["image_size"])[None]
    prompts = {"text": S["prompt"], "empty": S["negative_prompt"], "image": S["image_prompt"]}
    for key, prompt in prompts.items():
        has_img = "[<IMG_PLH>]" in prompt
        text = E.expand_placeholders(prompt, int(has_img), nq)
        ids = tok([text + "[IMG]"], return_tensors="pt").input_ids[0]
        c.expect_pass(f"regress.{key}.input_ids", ids)
        v = G.regression_kv(enc, tok, T[f"regress.{key}.input_ids"].long(), px if has_img else None, nq)
        c.expect_pass(f"regress.{key}.v", v)
    ae_c, ae_n = G.autoencode_conditions(enc, px)
    c.expect_pass("autoenc.cond", ae_c)
    c.expect_pass("autoenc.neg", ae_n)

    # UNet / VAE from stored inputs
    cond = torch.stack([T["regress.text.v"], T["regress.empty.v"]])
    lat, tids = T["unet.latents"], [int(x) for x in T["unet.time_ids"]]
    for t in S["eps_timesteps"]:
        embs = []
        eps = G.unet_eps(unet, torch.cat([lat, lat]), t, cond, tids, emb_out=embs)
        c.expect_pass(f"unet.t{t}.eps", eps)
        c.expect_pass(f"unet.t{t}.emb", embs[0])
    x, u8 = G.vae_decode(vae, T["vae.latents"])
    c.expect_pass("vae.decoded", x)
    c.expect_pass("vae.image_u8", u8)

    # whole pipeline runs
    pipe_tids = S["original_size"] + S["crop"] + [S["pipe_height"], S["pipe_width"]]
    conds = {"text": cond, "autoenc": torch.stack([T["autoenc.cond"], T["autoenc.neg"]])}
    for key, cc in conds.items():
        trace = []
        lat_f = G.denoise(unet, sched, cc, T[f"pipe.{key}.noise"], S["pipe_steps"], S["guidance_scale"],
                          pipe_tids, trace)
        c.expect_pass(f"pipe.{key}.latents_per_step", torch.cat(trace))
        x, u8 = G.vae_decode(vae, lat_f)
        c.expect_pass(f"pipe.{key}.decoded", x)
        c.expect_pass(f"pipe.{key}.image_u8", u8)

    # ---- mutations: each is a plausible porting error and must be caught
    t0 = S["eps_timesteps"][0]
    e = G.unet_eps(unet, torch.cat([lat, lat]), t0, cond, tids)
    g = S["guidance_scale"]
    c.expect_fail("CFG rows read as [uncond, cond]", f"unet.t{t0}.eps_cfg", e[:1] + g * (e[1:] - e[:1]))
    hw = tids[:4] + [tids[5], tids[4]]
    c.expect_fail("time_ids height/width swapped", f"unet.t{t0}.eps",
                  G.unet_eps(unet, torch.cat([lat, lat]), t0, cond, hw))
    c.expect_fail("timestep 999 instead of the leading-spacing 981", f"unet.t{t0}.eps",
                  G.unet_eps(unet, torch.cat([lat, lat]), 999.0 if t0 == 981 else t0 + 18, cond, tids))
    u2 = copy.deepcopy(unet)
    u2.time_proj.flip_sin_to_cos = False
    u2.add_time_proj.flip_sin_to_cos = False
    c.expect_fail("sinusoid emitted [sin, cos]", f"unet.t{t0}.eps",
                  G.unet_eps(u2, torch.cat([lat, lat]), t0, cond, tids))
    u3 = copy.deepcopy(unet)
    for m in u3.modules():
        if hasattr(m, "heads") and hasattr(m, "to_q"):
            # attention_head_dim read as the head *dimension* (the diffusers naming quirk missed)
            inner = m.to_q.out_features
            m.heads = max(1, inner // u3.config.attention_head_dim[-1])
            m.scale = (inner // m.heads) ** -0.5
    c.expect_fail("attention_head_dim read as head size", f"unet.t{t0}.eps",
                  G.unet_eps(u3, torch.cat([lat, lat]), t0, cond, tids))
    x_bad = vae.decode(T["vae.latents"] / 0.18215).sample
    c.expect_fail("SD1.5 VAE scale 0.18215", "vae.decoded", x_bad)
    c.expect_fail("text_embeds = zeros instead of the token mean", f"unet.t{t0}.eps",
                  unet(torch.cat([lat, lat]), torch.tensor(float(t0)), encoder_hidden_states=cond,
                       added_cond_kwargs={"text_embeds": torch.zeros(2, cond.shape[-1]),
                                          "time_ids": torch.tensor(tids * 2)}).sample)
    lin = EulerDiscreteScheduler.from_config({**dict(sched.config), "timestep_spacing": "linspace"})
    trace = []
    G.denoise(unet, lin, cond, T["pipe.text.noise"], S["pipe_steps"], S["guidance_scale"], pipe_tids, trace)
    c.expect_fail("linspace timestep spacing", "pipe.text.latents_per_step", torch.cat(trace))
    trace = []
    G.denoise(unet, sched, cond[:1], T["pipe.text.noise"], S["pipe_steps"], 1.0, pipe_tids, trace)
    c.expect_fail("no classifier-free guidance", "pipe.text.latents_per_step", torch.cat(trace))
    # regression: project_down of the hidden state before the final RMSNorm (v_0 from the prefill)
    ids = T["regress.text.input_ids"].long()
    lm = enc.lm.model
    pre = {}
    h = lm.norm.register_forward_hook(lambda m, i, o: pre.__setitem__("x", i[0]))
    lm(inputs_embeds=lm.embed_tokens(ids[None]))
    h.remove()
    c.expect_fail("regression without the final RMSNorm (v_0 only)", "regress.text.v",
                  torch.cat([enc.project_down(pre["x"][0, -1:]), T["regress.text.v"][1:]]))
    c.expect_fail("regression off by one (token j read at slot j+1)", "regress.text.v",
                  G.regression_kv(enc, tok, ids, None, nq + 1)[1:])
    c.expect_fail("negative condition = zeros instead of the empty-prompt regression", f"unet.t{t0}.eps",
                  G.unet_eps(unet, torch.cat([lat, lat]), t0, torch.stack([cond[0], torch.zeros_like(cond[1])]), tids))

    print(f"{'OK' if c.failures == 0 else 'FAILED'}: {c.failures} problem(s)")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
