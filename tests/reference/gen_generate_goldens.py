"""Goldens for core/generate (the token search), independent of the Emu2 networks.

A tiny deterministic "table LM" (a transformers PreTrainedModel) is driven by transformers 4.31
`generate(inputs_embeds=...)` exactly as the Emu2 wrapper drives LLaMA (bos/eos/pad given, an
attention mask of ones, min_length, length_penalty, repetition_penalty, num_beams, max_new_tokens).
Its logits depend on a per-row state that hashes the row's whole history, so a wrong beam reorder
changes the result:
    prefill of batch item i:  logits = start[i],                h = i + 1
    feeding token t:          h = (h * MUL + t + 7) % MOD,      logits = rows[h % P]
The state space is large (MOD = 2^31 - 1) so two histories never merge: with a small one, beams
that are permutations of each other reach equal scores up to float rounding, and which one wins
then depends on torch's summation order (not a rule worth pinning).
tests/unit/test_generate_goldens.c implements the same LM as an emu2_lm_stepper and must pick the
same ids (and beam scores within 1e-4).

Run: /work/venv-ref/bin/python tests/reference/gen_generate_goldens.py  (writes tests/data/generate/)
"""
import json
import os

import torch
import transformers
from transformers import GenerationConfig, LogitsProcessorList, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

VOCAB, P, MUL, MOD = 40, 61, 48271, 2147483647
BOS, EOS, PAD = 1, 2, 0
N_ITEMS = 3
OUT = os.path.join(os.path.dirname(__file__), "..", "data", "generate", "table_lm.json")
OUT_SAMPLE = os.path.join(os.path.dirname(__file__), "..", "data", "generate", "sampling_stats.json")
OUT_WARP = os.path.join(os.path.dirname(__file__), "..", "data", "generate", "logits_chain.json")


class TableConfig(PretrainedConfig):
    model_type = "emu2_table_lm"

    def __init__(self, vocab_size=VOCAB, **kw):
        self.vocab_size = vocab_size
        super().__init__(**kw)


class TableLM(PreTrainedModel):
    config_class = TableConfig
    main_input_name = "input_ids"

    def __init__(self, config, start, rows):
        super().__init__(config)
        self.register_buffer("start", start)
        self.register_buffer("rows", rows)
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # gives the model a device and dtype

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None,
                                      inputs_embeds=None, **kw):
        if past_key_values is None:
            return {"inputs_embeds": inputs_embeds, "past_key_values": None}
        return {"input_ids": input_ids[:, -1:], "past_key_values": past_key_values}

    def forward(self, input_ids=None, inputs_embeds=None, past_key_values=None, **kw):
        if past_key_values is None:
            item = inputs_embeds[:, -1, 0].round().long()  # the prompt "embedding" names the item
            logits = self.start[item]
            h = item + 1
        else:
            h = (past_key_values[0] * MUL + input_ids[:, -1] + 7) % MOD
            logits = self.rows[h % P]
        return CausalLMOutputWithPast(logits=logits[:, None, :].float(), past_key_values=(h,))

    @staticmethod
    def _reorder_cache(past, beam_idx):
        return (past[0].index_select(0, beam_idx),)


def make_tables(seed, eos_shift):
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(N_ITEMS, VOCAB, generator=g) * 2.0
    rows = torch.randn(P, VOCAB, generator=g) * 2.0
    rows[:, EOS] += eos_shift
    start[:, EOS] += eos_shift
    return start.float(), rows.float()


def run_case(model, items, num_beams, max_new_tokens, min_length, length_penalty, repetition_penalty):
    emb = torch.tensor(items, dtype=torch.float32)[:, None, None].expand(len(items), 3, 1).contiguous()
    attn = torch.ones(len(items), 3, dtype=torch.long)
    out = model.generate(inputs_embeds=emb, attention_mask=attn, num_beams=num_beams, do_sample=False,
                         max_new_tokens=max_new_tokens, min_length=min_length, length_penalty=length_penalty,
                         repetition_penalty=repetition_penalty, bos_token_id=BOS, eos_token_id=EOS,
                         pad_token_id=PAD, early_stopping=False, output_scores=True,
                         return_dict_in_generate=True)
    seqs = out.sequences
    assert bool((seqs[:, 0] == BOS).all()), "expected the BOS generate() prepends with inputs_embeds"
    results = []
    for b, row in enumerate(seqs[:, 1:].tolist()):
        ids, eos = [], False
        for t in row:
            if t == EOS:
                eos = True
                break
            ids.append(t)
        if not eos and num_beams == 1:
            # greedy pads a finished row; an unfinished one has all max_new_tokens ids
            assert len(ids) == max_new_tokens, (ids, max_new_tokens)
        r = {"ids": ids, "eos": eos}
        if num_beams > 1:
            r["score"] = float(out.sequences_scores[b])
        results.append(r)
    return results


def warp_cases(model):
    """HF's own processor + warper lists (built by generate()'s helpers from a GenerationConfig) applied
    to raw rows: what core/generate's emu2_logits_process + emu2_logits_warp must reproduce.
    -inf is stored as null (strict JSON)."""
    g = torch.Generator().manual_seed(5)
    configs = [  # do_sample, num_beams, temperature, top_k, top_p, repetition_penalty, min_length
        (False, 1, 1.0, 0, 1.0, 1.3, 3), (False, 5, 1.0, 0, 1.0, 1.3, 1), (True, 1, 0.7, 0, 1.0, 1.0, 1),
        (True, 1, 1.0, 5, 1.0, 1.0, 1), (True, 1, 1.0, 0, 0.9, 1.0, 1), (True, 1, 0.6, 7, 0.8, 1.2, 4),
        (True, 2, 1.0, 1, 1.0, 1.0, 1), (True, 2, 1.0, 0, 0.05, 1.0, 1), (True, 1, 1.0, 0, 0.0, 1.0, 1),
        (True, 1, 2.0, 40, 0.95, 1.5, 1), (True, 1, 1.0, 50, 1.0, 1.0, 1), (True, 3, 1.3, 3, 0.7, 1.1, 2),
    ]
    cases = []
    for ci, (sample, nb, temp, k, p, rp, ml) in enumerate(configs):
        gc = GenerationConfig(do_sample=sample, num_beams=nb, temperature=temp, top_k=k, top_p=p,
                              repetition_penalty=rp, min_length=ml, bos_token_id=BOS, eos_token_id=EOS,
                              pad_token_id=PAD)
        for r in range(6):
            n_gen = r
            seq = [BOS] + torch.randint(3, VOCAB, (n_gen,), generator=g).tolist()
            if n_gen >= 2:
                seq[-1] = seq[1]  # a repeated id is penalized once
            ids = torch.tensor([seq])
            row = (torch.randn(1, VOCAB, generator=g) * 3.0).float()
            row[0, BOS] = 4.0 if r % 2 else -4.0  # the BOS is in the penalized sequence
            if r % 3 == 0:
                row[0, 10:14] = row[0, 20]  # ties around the top-k boundary
            procs = model._get_logits_processor(generation_config=gc, input_ids_seq_length=1,
                                                encoder_input_ids=ids, prefix_allowed_tokens_fn=None,
                                                logits_processor=LogitsProcessorList())
            out = procs(ids, row.clone())
            if sample:
                out = model._get_logits_warper(gc)(ids, out)
            want = [None if v == float("-inf") else v for v in out[0].tolist()]
            cases.append({"do_sample": sample, "num_beams": nb, "temperature": temp, "top_k": k, "top_p": p,
                          "repetition_penalty": rp, "min_length": ml, "seq": seq, "row": row[0].tolist(),
                          "want": want})
    return cases


def peaked_tables(seed):
    """Few plausible tokens per row, so sampled outcomes have a small support (a cheap histogram)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(N_ITEMS, VOCAB, generator=g)
    rows = torch.randn(P, VOCAB, generator=g)
    for t in (start, rows):
        for r in range(t.shape[0]):
            t[r, torch.randperm(VOCAB, generator=g)[:3]] += 4.0
    rows[::4, EOS] += 4.0
    return start.float(), rows.float()


SAMPLE_RUNS = 4000


def sampling_stats():
    """Histograms of whole sampled outputs of HF generate() (sample and beam_sample) over seeds:
    the C test draws with its own RNG and compares the histograms (total variation distance)."""
    start, rows = peaked_tables(31)
    model = TableLM(TableConfig(), start, rows).eval()
    configs = [  # num_beams, temperature, top_k, top_p, repetition_penalty, length_penalty, max_new_tokens
        (1, 0.8, 4, 0.9, 1.2, 1.0, 3),
        (2, 1.0, 0, 1.0, 1.0, 1.0, 3),
        (3, 0.7, 5, 1.0, 1.0, -1.0, 4),
        (2, 1.5, 4, 0.8, 1.3, 2.0, 3),
        (2, 2.5, 3, 1.0, 1.0, 1.0, 3),
        (3, 3.0, 2, 1.0, 1.0, 0.5, 3),
    ]
    out = []
    for nb, temp, k, p, rp, lp, mnt in configs:
        hist = {}
        emb = torch.zeros(1, 3, 1)
        for seed in range(SAMPLE_RUNS):
            torch.manual_seed(seed)
            with torch.no_grad():
                seqs = model.generate(inputs_embeds=emb, attention_mask=torch.ones(1, 3, dtype=torch.long),
                                      num_beams=nb, do_sample=True, temperature=temp, top_k=k, top_p=p,
                                      repetition_penalty=rp, length_penalty=lp, max_new_tokens=mnt, min_length=1,
                                      bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, early_stopping=False)
            row = seqs[0, 1:].tolist()
            ids, eos = [], False
            for t in row:
                if t == EOS:
                    eos = True
                    break
                ids.append(t)
            key = ",".join(map(str, ids)) + ("$" if eos else "")
            hist[key] = hist.get(key, 0) + 1
        out.append({"num_beams": nb, "temperature": temp, "top_k": k, "top_p": p, "repetition_penalty": rp,
                    "length_penalty": lp, "max_new_tokens": mnt, "runs": SAMPLE_RUNS, "histogram": hist})
    return {"generator": "tests/reference/gen_generate_goldens.py", "transformers": transformers.__version__,
            "vocab": VOCAB, "table_rows": P, "hash_mul": MUL, "hash_mod": MOD, "bos": BOS, "eos": EOS, "pad": PAD,
            "item": 0, "start": start.tolist(), "rows": rows.tolist(), "configs": out}


def main():
    assert transformers.__version__ == "4.31.0", transformers.__version__
    torch.manual_seed(0)
    variants = [("plain", 11, 0.0), ("eos_likely", 12, 2.5), ("eos_rare", 13, -2.0)]
    tables, cases = [], []
    for ti, (name, seed, shift) in enumerate(variants):
        start, rows = make_tables(seed, shift)
        tables.append({"name": name, "start": start.tolist(), "rows": rows.tolist()})
        model = TableLM(TableConfig(), start, rows).eval()
        configs = []
        for items in ([0], [1, 2]):
            for mnt in (4, 25):
                for min_len in (1, min(6, mnt + 1)):  # HF refuses min_length > max_new_tokens + 1
                    for rp in (1.0, 1.3):
                        configs.append((items, 1, mnt, min_len, 1.0, rp))
                        for lp in (-1.0, 0.0, 1.0, 2.0):
                            configs.append((items, 5, mnt, min_len, lp, rp))
                        for nb in (2, 3):
                            configs.append((items, nb, mnt, min_len, -1.0 if nb == 2 else 2.0, rp))
        configs.append(([2, 0, 1], 4, 40, 1, 1.5, 1.0))
        configs.append(([2, 0, 1], 1, 40, 3, 1.0, 1.2))
        configs.append(([0], 5, 1, 1, -1.0, 1.0))
        configs.append(([1], 5, 2, 3, 2.0, 1.0))
        for items, nb, mnt, min_len, lp, rp in configs:
            with torch.no_grad():
                outs = run_case(model, items, nb, mnt, min_len, lp, rp)
            cases.append({"table": ti, "items": items, "num_beams": nb, "max_new_tokens": mnt,
                          "min_length": min_len, "length_penalty": lp, "repetition_penalty": rp,
                          "outputs": outs})
    doc = {"generator": "tests/reference/gen_generate_goldens.py", "transformers": transformers.__version__,
           "torch": torch.__version__, "vocab": VOCAB, "table_rows": P, "hash_mul": MUL, "hash_mod": MOD,
           "bos": BOS, "eos": EOS, "pad": PAD, "tables": tables, "cases": cases}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    wc = warp_cases(TableLM(TableConfig(), *make_tables(1, 0.0)))
    with open(OUT_WARP, "w") as f:
        json.dump({"generator": "tests/reference/gen_generate_goldens.py", "transformers": transformers.__version__,
                   "vocab": VOCAB, "eos": EOS, "cases": wc}, f, separators=(",", ":"))
        f.write("\n")
    n_inf = sum(v is None for c in wc for v in c["want"])
    print(f"{OUT_WARP}: {len(wc)} rows, {n_inf} values filtered to -inf")
    stats = sampling_stats()
    with open(OUT_SAMPLE, "w") as f:
        json.dump(stats, f, separators=(",", ":"))
        f.write("\n")
    print(f"{OUT_SAMPLE}: " + ", ".join(f"{len(c['histogram'])} outcomes" for c in stats["configs"]))
    n_eos = sum(o["eos"] for c in cases for o in c["outputs"])
    n_out = sum(len(c["outputs"]) for c in cases)
    print(f"{OUT}: {len(cases)} cases, {n_out} outputs ({n_eos} ended by EOS), {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
