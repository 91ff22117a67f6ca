"""The published Emu2 generation wrapper (EMU2-SPEC §4.3-4.6, §5) on top of emu2ref models."""
import torch

from .preprocess import preprocess
from .tokenizer import expand_placeholders, IMAGE

SYSTEM_DEFAULT = "You are a helpful assistant, dedicated to delivering comprehensive and meticulous responses."
SYSTEM_GROUNDING = "You are a helpful assistant, dedicated to provide concise and efficient answers."


def chat_prompt_native(turns, system=SYSTEM_DEFAULT, grounding=False):
    """Native/demo Emu2-Chat template. turns = [user, assistant, user, ...] strings (placeholders inside)."""
    if len(turns) % 2 != 1:
        raise ValueError("turns must be user, assistant, ..., user (odd count)")
    prompt = system
    for i, t in enumerate(turns):
        if i == 0:
            prompt += " [USER]: "
        elif i % 2 == 0:
            prompt += "</s>[USER]: "
        else:
            prompt += " [ASSISTANT]: "
        prompt += t
    prompt += " [ASSISTANT]:"
    if grounding:
        prompt += "<grounding>"
    return prompt


def chat_prompt_hf(text, system=""):
    """HF build_input_ids template for model_version 'chat'."""
    return system + "[USER]: " + text + "[ASSISTANT]:"


def _pixels(images, cfg):
    s = cfg["vision_config"]["image_size"]
    out = []
    for im in images:
        out.append(im if torch.is_tensor(im) else preprocess(im, s))
    return torch.stack(out) if out else None


def build_input_ids(tokenizer, cfg, prompts, n_images_per_prompt, padding_side="left", chat="none"):
    """Expand placeholders (exact count check per prompt), optional HF chat template, tokenize with BOS and
    padding='longest'. padding_side 'left' = native code (what batched generation needs); HF default 'right'.
    chat: 'none' | 'hf' (apply §4.3 template here; for 'native' build the string with chat_prompt_native)."""
    nq = cfg["vision_config"]["n_query"]
    texts = []
    for p, n in zip(prompts, n_images_per_prompt):
        if chat == "hf":
            p = chat_prompt_hf(p)
        texts.append(expand_placeholders(p, n, nq))
    old = tokenizer.padding_side
    tokenizer.padding_side = padding_side
    try:
        enc = tokenizer(texts, padding="longest", return_tensors="pt")
    finally:
        tokenizer.padding_side = old
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def embed_inputs(model, tokenizer, input_ids, pixels):
    """Token embeddings with project_up(pool(EVA(images))) spliced into <image> slots in (batch, position) order."""
    lm = model.lm
    emb = lm.model.embed_tokens(input_ids)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE)
    mask = input_ids == image_id
    n_slots = int(mask.sum())
    if pixels is None or pixels.shape[0] == 0:
        if n_slots:
            raise ValueError(f"{n_slots} <image> slots but no images")
        return emb
    vis = model.encode_image(pixels).to(emb.dtype)  # [N, n_query, hidden]
    vis = vis.reshape(-1, vis.shape[-1])
    if vis.shape[0] != n_slots:
        raise ValueError(f"{n_slots} <image> slots but {vis.shape[0]} visual rows")
    emb = emb.clone()
    emb[mask] = vis
    return emb


def _split_images(images, prompts):
    from .tokenizer import count_placeholders
    counts = [count_placeholders(p) for p in prompts]
    if sum(counts) != len(images):
        raise ValueError(f"prompts hold {sum(counts)} image placeholder(s) but {len(images)} image(s) were given")
    return counts


def prepare(model, tokenizer, cfg, prompts, images, padding_side="left", chat="none"):
    if isinstance(prompts, str):
        prompts = [prompts]
    images = list(images or [])
    counts = _split_images(images, prompts)
    ids, attn = build_input_ids(tokenizer, cfg, prompts, counts, padding_side, chat)
    pixels = _pixels(images, cfg)
    emb = embed_inputs(model, tokenizer, ids, pixels)
    return ids, attn, emb


@torch.no_grad()
def generate(model, tokenizer, cfg, prompts, images=(), num_beams=5, max_new_tokens=10, min_len=1,
             length_penalty=-1.0, do_sample=False, repetition_penalty=1.0, padding_side="left", chat="none",
             skip_special_tokens=True, **extra):
    """Published wrapper defaults: beams 5, min_len 1, length_penalty -1, no sampling, eos 2, pad from config.
    images: PIL images / paths / preprocessed tensors, in placeholder order over the whole batch.
    Returns {'ids': [[new token ids without eos/pad]...], 'text': [...], 'input_ids', 'attention_mask'}."""
    ids, attn, emb = prepare(model, tokenizer, cfg, prompts, images, padding_side, chat)
    out = model.lm.generate(
        inputs_embeds=emb, attention_mask=attn, num_beams=num_beams, max_new_tokens=max_new_tokens,
        min_length=min_len, length_penalty=length_penalty, do_sample=do_sample,
        repetition_penalty=repetition_penalty, bos_token_id=cfg.get("bos_token_id", 1),
        eos_token_id=cfg.get("eos_token_id", 2), pad_token_id=cfg["pad_token_id"], **extra)
    eos, pad = cfg.get("eos_token_id", 2), cfg["pad_token_id"]
    # transformers 4.31 starts the sequence with a [BOS] it never feeds to the model when only
    # inputs_embeds are given: hypothesis lengths L count it (L = 1 + new tokens, EOS excluded) and
    # min_length=1 is therefore already met at step 0 (EOS is not banned). Strip it here.
    bos = cfg.get("bos_token_id", 1)
    if not bool((out[:, 0] == bos).all()):
        raise AssertionError("expected the BOS that generate() prepends with inputs_embeds")
    out = out[:, 1:]
    new_ids = []
    for row in out.tolist():
        r = []
        for t in row:
            if t == eos:
                break
            r.append(t)
        while r and r[-1] == pad:
            r.pop()
        new_ids.append(r)
    text = tokenizer.batch_decode(out, skip_special_tokens=skip_special_tokens)
    return {"ids": new_ids, "text": text, "input_ids": ids, "attention_mask": attn}


@torch.no_grad()
def first_step_logits(model, tokenizer, cfg, prompts, images=(), padding_side="left", chat="none"):
    """fp32 logits [B, vocab] at the last prompt position, position ids as generate() makes them
    (cumsum(attention_mask) - 1, padded slots 1)."""
    ids, attn, emb = prepare(model, tokenizer, cfg, prompts, images, padding_side, chat)
    pos = attn.long().cumsum(-1) - 1
    pos.masked_fill_(attn == 0, 1)
    out = model.lm(inputs_embeds=emb, attention_mask=attn, position_ids=pos, use_cache=False)
    if padding_side == "left":
        last = out.logits[:, -1, :]
    else:
        idx = attn.sum(-1) - 1
        last = out.logits[torch.arange(ids.shape[0]), idx]
    return last.float(), ids, attn


@torch.no_grad()
def vision_block_outputs(model, cfg, images):
    """Per image: preprocessed pixels, every EVA block output [B,1+g^2,W], pooled [B,nq,W], project_up rows."""
    pixels = _pixels(list(images), cfg)
    final, blocks = model.vision_tower(pixels, return_blocks=True)
    pooled = model.pool(final)
    return {"pixels": pixels, "blocks": blocks, "final": final, "pooled": pooled, "up": model.project_up(pooled)}
