"""Train models/emu2-tiny-digits: a tiny Emu2-architecture model on synthetic circle/digit images.

python tests/reference/train_tiny.py --steps 6000 --out models/emu2-tiny-digits
Deterministic for a given --seed and step count (CPU, torch.set_num_threads(--threads)).
Data: emu2ref.data (JPEG -> PIL bicubic resize cached as uint8); tokenizer: make_tokenizer.py.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emu2ref as E  # noqa: E402
from emu2ref import data as D  # noqa: E402
from emu2ref.preprocess import CLIP_MEAN, CLIP_STD  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PLH = E.IMG_PLH


def tiny_config(vocab):
    return E.make_config(
        hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, vocab_size=vocab,
        max_position_embeddings=512, name="emu2-tiny-digits",
        vision=dict(image_size=96, patch_size=12, width=128, layers=4, head_width=32, intermediate_size=512,
                    n_query=16, v_query=16, eva_model_name="eva-clip-tiny-12"),
    )


def load_cache(path, n, seed, size):
    if os.path.exists(path):
        z = np.load(path)
        return z["images"], [tuple(x) for x in json.loads(str(z["labels"]))]
    t = time.time()
    arr, labels = D.resized_split(n, seed, size)
    np.savez(path, images=arr, labels=json.dumps(labels))
    print(f"cache {path}: {n} images in {time.time() - t:.0f}s", flush=True)
    return arr, labels


def corrupt(label, rng):
    c, dc, d, p = label
    f = rng.randrange(4)
    if f == 0:
        c = rng.choice([x for x in D.COLORS if x != c])
    elif f == 1:
        dc = "black" if dc == "white" else "white"
    elif f == 2:
        d = rng.choice([x for x in range(10) if x != d])
    else:
        p = rng.choice([x for x in D.POSITIONS if x != p])
    return (c, dc, d, p)


def make_sample(rng, n_images):
    """-> (prompt, answer, [image indices]); answer is appended to the prompt verbatim."""
    r = rng.random()
    if r < 0.45:
        i = rng.randrange(n_images)
        return PLH, None, [i]
    if r < 0.72:
        i = rng.randrange(n_images)
        return PLH + D.DESCRIBE_PROMPT, "sentence", [i]
    k = rng.choice([1, 2, 3, 3])
    idx = [rng.randrange(n_images) for _ in range(k + 1)]
    seps = [".", ".", ""] if (k == 3 and rng.random() < 0.5) else [rng.choice([".", "", " ", ". "]) for _ in range(k)]
    return "fewshot", seps, idx


class Batcher:
    def __init__(self, tok, cfg, images, labels, seed):
        self.tok, self.cfg, self.images, self.labels = tok, cfg, images, labels
        self.rng = random.Random(seed)
        self.nq = cfg["vision_config"]["n_query"]
        self.eos, self.pad = cfg["eos_token_id"], cfg["pad_token_id"]
        self.mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        self._memo = {}
        self.cell = circle_cells(images, cfg)

    def ids(self, text):
        if text not in self._memo:
            self._memo[text] = self.tok(E.expand_placeholders(text, text.count(PLH), self.nq))["input_ids"]
        return self._memo[text]

    def one(self):
        kind, extra, idx = make_sample(self.rng, len(self.labels))
        if kind == "fewshot":
            prompt = ""
            for j, i in enumerate(idx[:-1]):
                lab = self.labels[i]
                if self.rng.random() < 0.25:
                    lab = corrupt(lab, self.rng)
                prompt += PLH + D.caption(lab) + extra[j]
            prompt += PLH
            answer = D.caption(self.labels[idx[-1]])
            full = prompt + answer
        elif extra == "sentence":
            prompt, full = kind, kind + " " + D.sentence(self.labels[idx[0]])
        else:
            prompt, full = kind, kind + D.caption(self.labels[idx[0]])
        p_ids, f_ids = self.ids(prompt), self.ids(full)
        assert f_ids[:len(p_ids)] == p_ids, (prompt, full)
        seq = f_ids + [self.eos]
        lab = [-100] * len(p_ids) + f_ids[len(p_ids):] + [self.eos]
        return seq, lab, idx

    def batch(self, bs):
        items = [self.one() for _ in range(bs)]
        T = max(len(s) for s, _, _ in items)
        ids = torch.full((bs, T), self.pad, dtype=torch.long)
        labels = torch.full((bs, T), -100, dtype=torch.long)
        attn = torch.zeros((bs, T), dtype=torch.long)
        img_idx = []
        for b, (s, l, idx) in enumerate(items):
            ids[b, :len(s)] = torch.tensor(s)
            labels[b, :len(l)] = torch.tensor(l)
            attn[b, :len(s)] = 1
            img_idx += idx
        px = torch.from_numpy(self.images[img_idx]).permute(0, 3, 1, 2).float().div(255)
        px = (px - self.mean) / self.std
        aux = torch.tensor([label_index(self.labels[i]) + [self.cell[i]] for i in img_idx], dtype=torch.long)
        return ids, labels, attn, px, aux


FIELD_SIZES = (len(D.COLORS), len(D.DIGIT_COLORS), 10, len(D.POSITIONS))


def label_index(label):
    c, dc, d, p = label
    return [list(D.COLORS).index(c), list(D.DIGIT_COLORS).index(dc), d, D.POSITIONS.index(p)]


def circle_cells(images, cfg):
    """Index of the pooled visual token whose cell holds the circle's centroid (from the pixels)."""
    n = images.shape[0]
    side = int(round(cfg["vision_config"]["n_query"] ** 0.5))
    cell = images.shape[1] / side
    out = []
    for i in range(0, n, 1000):
        a = images[i:i + 1000].astype(np.int16)
        fg = np.abs(a - a[:, :1, :1, :]).sum(-1) > 60  # differs from the (corner) background
        ys, xs = np.arange(a.shape[1])[None, :, None], np.arange(a.shape[2])[None, None, :]
        cnt = fg.sum((1, 2)).clip(min=1)
        cy, cx = (fg * ys).sum((1, 2)) / cnt, (fg * xs).sum((1, 2)) / cnt
        out += list((np.minimum(cy // cell, side - 1) * side + np.minimum(cx // cell, side - 1)).astype(int))
    return out


class AuxHeads(torch.nn.Module):
    """Training-only linear probes on the pooled visual tokens (one per caption field). They give the
    vision tower a direct signal early in training; they are not part of the shipped model."""

    def __init__(self, cfg, local_digit=True):
        super().__init__()
        v = cfg["vision_config"]
        self.fc = torch.nn.Linear(v["n_query"] * v["width"], sum(FIELD_SIZES))
        # one digit classifier shared by all visual tokens, applied at the token holding the circle
        self.local_digit = torch.nn.Linear(v["width"], 10) if local_digit else None

    def forward(self, pooled, target):
        logits = self.fc(pooled.flatten(1)).split(FIELD_SIZES, dim=-1)
        loss = sum(F.cross_entropy(lg, target[:, k]) for k, lg in enumerate(logits)) / len(FIELD_SIZES)
        acc = [(lg.argmax(-1) == target[:, k]).float().mean().item() for k, lg in enumerate(logits)]
        if self.local_digit is None:
            return loss, acc + [0.0]
        loc = self.local_digit(pooled[torch.arange(pooled.shape[0]), target[:, 4]])
        loss = loss + F.cross_entropy(loc, target[:, 2])
        acc.append((loc.argmax(-1) == target[:, 2]).float().mean().item())
        return loss, acc


def forward_loss(model, tok, ids, labels, attn, px, aux=None, heads=None):
    lm = model.lm
    emb = lm.model.embed_tokens(ids)
    mask = ids == tok.convert_tokens_to_ids("<image>")
    pooled = model.pool(model.vision_tower(px))
    aux_loss, aux_acc = heads(pooled, aux) if heads is not None else (0.0, None)
    vis = model.project_up(pooled).reshape(-1, emb.shape[-1])
    assert vis.shape[0] == int(mask.sum())
    emb = emb.masked_scatter(mask.unsqueeze(-1), vis)
    out = lm(inputs_embeds=emb, attention_mask=attn, use_cache=False)
    logits = out.logits[:, :-1].float()
    tgt = labels[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
    with torch.no_grad():
        pred = logits.argmax(-1)
        ok = ((pred == tgt) | (tgt == -100)).all(-1).float().mean().item()
    return loss, aux_loss, ok, aux_acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "../../models/emu2-tiny-digits"))
    ap.add_argument("--tok", default=None, help="tokenizer dir (default: --out)")
    ap.add_argument("--cache", default="/tmp/emu2-tiny-cache")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--n-train", type=int, default=30000)
    ap.add_argument("--aux-weight", type=float, default=1.0, help="weight of the training-only field probes")
    ap.add_argument("--local-digit", type=int, default=1, help="shared per-token digit probe (0/1)")
    ap.add_argument("--stop-after", type=int, default=0, help="stop (saving) after this step of the schedule")
    ap.add_argument("--init", default=None, help="start from this saved model (continued training)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--data-seed", type=int, default=1000, help="seed of the training image pool (never 2000)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop early (saving) after this wall time")
    ap.add_argument("--schedule-minutes", type=float, default=0,
                    help="cosine over wall time instead of --steps (shared machine: always ends annealed); stops there")
    ap.add_argument("--lr-log", default=None, help="write 'step lr' per step (to replay a wall-time schedule)")
    ap.add_argument("--lr-replay", default=None, help="take each step's lr from an --lr-log file (exact rerun)")
    ap.add_argument("--ckpt-dir", default=None, help="also keep every checkpoint as DIR/step-N")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.cache, exist_ok=True)
    tok = E.load_tokenizer(a.tok or a.out)
    cfg = tiny_config(len(tok))
    s = cfg["vision_config"]["image_size"]
    if a.data_seed == 2000:
        sys.exit("--data-seed 2000 is the held-out set (eval_tiny.py): never train on it")
    images, labels = load_cache(os.path.join(a.cache, f"train_{s}_s{a.data_seed}_n{a.n_train}.npz"), a.n_train,
                                a.data_seed, s)
    if a.init:
        model, _ = E.load_pretrained(a.init)
        print(f"init from {a.init}", flush=True)
    else:
        model = E.build_model(cfg, seed=a.seed)
    model.train()
    nparam = sum(p.numel() for p in model.parameters())
    print(f"params {nparam} ({nparam * 4 / 1e6:.1f} MB f32)", flush=True)
    heads = AuxHeads(cfg, a.local_digit) if a.aux_weight > 0 else None
    named = list(model.named_parameters()) + (list(heads.named_parameters()) if heads is not None else [])
    decay = [p for n, p in named if p.dim() >= 2 and "pos_embed" not in n and "cls_token" not in n]
    no_decay = [p for n, p in named if not (p.dim() >= 2 and "pos_embed" not in n and "cls_token" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98), eps=1e-8)
    batcher = Batcher(tok, cfg, images, labels, a.seed)
    replay = None
    if a.lr_replay:
        with open(a.lr_replay, encoding="utf-8") as f:
            replay = {int(k): float(v) for k, v in (line.split() for line in f if line.strip())}
        a.steps = min(a.steps, max(replay))
    lr_log = open(a.lr_log, "w", encoding="utf-8") if a.lr_log else None
    t0 = time.time()
    run_loss, run_ok, run_aux = 0.0, 0.0, [0.0] * 5
    for step in range(1, a.steps + 1):
        progress = min(1.0, (time.time() - t0) / (a.schedule_minutes * 60)) if a.schedule_minutes else step / a.steps
        lr = a.lr * min(1.0, step / a.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        if replay is not None:
            lr = replay[step]
        if lr_log is not None:
            lr_log.write(f"{step} {lr!r}\n")
            lr_log.flush()
        for g in opt.param_groups:
            g["lr"] = lr
        ids, lab, attn, px, aux = batcher.batch(a.batch)
        loss, aux_loss, ok, aux_acc = forward_loss(model, tok, ids, lab, attn, px, aux, heads)
        opt.zero_grad(set_to_none=True)
        (loss + a.aux_weight * aux_loss).backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        if aux_acc is not None:
            run_aux = [r + x for r, x in zip(run_aux, aux_acc)]
        opt.step()
        run_loss += loss.item()
        run_ok += ok
        if step % 50 == 0:
            el = time.time() - t0
            probe = " ".join(f"{x / 50:.2f}" for x in run_aux)
            print(f"step {step} loss {run_loss / 50:.4f} seq_exact {run_ok / 50:.3f} probe_acc {probe} "
                  f"lr {lr:.2e} {el:.0f}s ({el / step:.2f}s/step)", flush=True)
            run_loss, run_ok, run_aux = 0.0, 0.0, [0.0] * 5
        last = step == a.steps or step == a.stop_after or (a.max_minutes and time.time() - t0 > a.max_minutes * 60)
        last = last or (a.schedule_minutes and replay is None and progress >= 1.0)
        if step % a.ckpt_every == 0 or last:
            model.eval()
            E.save_pretrained(model, cfg, a.out, tokenizer_dir=a.tok or a.out, fmt="safetensors", naming="hf")
            if a.ckpt_dir:
                E.save_pretrained(model, cfg, os.path.join(a.ckpt_dir, f"step-{step}"), tokenizer_dir=a.tok or a.out,
                                  fmt="safetensors", naming="hf")
            model.train()
            print(f"saved step {step} to {a.out}", flush=True)
        if last:
            break
    print(f"done {step} steps in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
