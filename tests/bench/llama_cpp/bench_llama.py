"""The llama.cpp side of the comparison (tests/bench/run_llama_cpp.sh), through llama-cpp-python:
the prompt ids the engine's driver printed (bench_decode --print-prompt-ids), then G greedy tokens
(EOS suppressed, as the engine's min_length does), timed the same way as bench_decode.c:
  prefill = decode of the P prompt ids + argmax of the first token     (P tokens -> tokens/s)
  decode  = first token .. last token chosen: G - 1 one-token steps    (G - 1 tokens -> tokens/s)
One untimed warm-up (prompt + 2 tokens) first. Output: JSON lines on stdout, a summary on stderr.

    python bench_llama.py MODEL.gguf --prompt-ids FILE [--threads T] [--gen G] [--repeats R]
                          [--weights LABEL] [--flash-attn on|off]
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

import llama_cpp
from llama_cpp import Llama


def read_prompt_ids(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("bench") == "prompt":
                    return [int(i) for i in rec["ids"]]
    sys.exit(f"bench_llama: no prompt ids in {path}")


class Runner:
    def __init__(self, path, threads, n_ctx, flash_attn):
        self.llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=threads,
                         n_threads_batch=threads, flash_attn=flash_attn, logits_all=False, verbose=False)
        self.ctx = self.llm._ctx.ctx
        self.vocab = self.llm.n_vocab()
        self.eos = self.llm.token_eos()

    def next_token(self):
        """Greedy choice from the last position's logits, EOS excluded (every run makes G tokens)."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.vocab,))
        saved = logits[self.eos]
        logits[self.eos] = -np.inf
        tok = int(np.argmax(logits))
        logits[self.eos] = saved
        return tok

    def run(self, ids, gen):
        """Returns (prefill seconds, decode seconds, generated ids, llama.cpp's own timings)."""
        self.llm.reset()  # the next eval drops the whole KV cache
        llama_cpp.llama_perf_context_reset(self.ctx)
        t0 = time.perf_counter()
        self.llm.eval(ids)
        tok = self.next_token()
        t1 = time.perf_counter()
        out = [tok]
        for _ in range(gen - 1):
            self.llm.eval([tok])
            tok = self.next_token()
            out.append(tok)
        t2 = time.perf_counter()
        # llama.cpp's own clock (prompt eval, token evals): shows how little the Python loop adds
        perf = llama_cpp.llama_perf_context(self.ctx)
        internal = {"prompt_s": round(perf.t_p_eval_ms / 1e3, 6), "n_prompt": perf.n_p_eval,
                    "eval_s": round(perf.t_eval_ms / 1e3, 6), "n_eval": perf.n_eval}
        return t1 - t0, t2 - t1, out, internal


def emit(a, bench, items, times, internal, ids=None):
    med = statistics.median(times)
    rec = {"impl": "llama.cpp", "bench": bench, "weights": a.weights, "threads": a.threads, "unit": "tokens/s",
           "items": items, "times_s": [round(t, 6) for t in times], "median_s": round(med, 6),
           "rate": round(items / med, 4), "flash_attn": a.flash_attn, "llama_internal": internal}
    if ids is not None:
        rec["generated_ids"] = ids
    print(json.dumps(rec, separators=(",", ":")), flush=True)
    print(f"llama.cpp {a.weights:5s} {bench:7s}: {items / med:9.2f} tokens/s "
          f"(min {items / max(times):.2f} max {items / min(times):.2f})", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default="stored")
    ap.add_argument("--flash-attn", choices=("on", "off"), default="on")
    a = ap.parse_args()
    ids = read_prompt_ids(a.prompt_ids)
    n_ctx = (len(ids) + a.gen + 255) // 256 * 256
    r = Runner(a.model, a.threads, n_ctx, a.flash_attn == "on")
    r.run(ids, 2)  # warm-up: faults the memory-mapped weights in, runs every kernel once
    prefill, decode, internal = [], [], []
    for _ in range(a.repeats):
        p, d, out, perf = r.run(ids, a.gen)
        prefill.append(p)
        decode.append(d)
        internal.append(perf)
    emit(a, "prefill", len(ids), prefill, [{k: x[k] for k in ("prompt_s", "n_prompt")} for x in internal])
    emit(a, "decode", a.gen - 1, decode, [{k: x[k] for k in ("eval_s", "n_eval")} for x in internal], out)


if __name__ == "__main__":
    main()
