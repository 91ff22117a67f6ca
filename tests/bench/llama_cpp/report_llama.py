"""Summarizes the JSON lines of tests/bench/run_llama_cpp.sh: per (model, threads, pair, measure) the
median tokens/s over every repeat of every round, min..max, and emu2 / llama.cpp; then, per pair, how
many of the greedy tokens the two engines chose alike (same weights, so they should agree until float
rounding flips a near-tie).

    python report_llama.py RESULTS.jsonl [--markdown]
"""
import os
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from report import args_and_records, print_table  # noqa: E402  (tests/bench/report.py)

# the engine's side (its weights, or its quantization) -> the llama.cpp GGUF types it is compared with
# "bf16-dot": bf16 weights with the engine's bf16 precision (activations rounded, as llama.cpp's bf16 does)
PEERS = {"f32": ["f32"], "bf16": ["bf16", "f16"], "bf16-dot": ["bf16"], "int8": ["q8_0"]}  # "int4*" -> q4_0
ORDER = ["f32", "bf16", "bf16-dot", "int8", "int4-g32", "int4"]


def peers(label):
    return ["q4_0"] if label.startswith("int4") else PEERS.get(label, [])


def emu2_label(weights, quant):
    return weights if quant == "none" else quant


def fmt(v):
    return f"{v:.4g}" if v < 1000 else f"{v:.0f}"


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    a, recs = args_and_records()
    samples = defaultdict(list)  # (model, threads, side, bench) -> tokens/s samples
    ids = {}                     # (model, threads, side) -> generated ids of the last run
    missing = {}                 # (model, threads, side) -> why not measured
    for r in recs:
        if r.get("impl") == "emu2":
            side = ("emu2", emu2_label(r["weights"], r.get("quant", "none")))
        elif r.get("impl") == "llama.cpp":
            side = ("llama.cpp", r["weights"])
        else:
            continue
        key = (r.get("model", "?"), r["threads"], side)
        if r.get("status") == "not available":
            missing[key] = r.get("reason", "")
            continue
        samples[key + (r["bench"],)] += [r["items"] / t for t in r["times_s"] if t > 0]
        if "generated_ids" in r:
            ids[key] = r["generated_ids"]
    head = ["model", "thr", "measure", "emu2", "emu2 tokens/s (median, min..max)", "llama.cpp",
            "llama.cpp tokens/s (median, min..max)", "emu2/llama.cpp"]
    rows, agree = [], []
    models = sorted({k[0] for k in samples} | {k[0] for k in missing})
    threads = sorted({k[1] for k in samples} | {k[1] for k in missing})
    for model in models:
        for thr in threads:
            labels = {k[2][1] for k in list(samples) + list(missing) if k[0] == model and k[1] == thr
                      and k[2][0] == "emu2"}
            labels = sorted(labels, key=lambda x: (ORDER.index(x) if x in ORDER else len(ORDER), x))
            for mine, theirs in [(("emu2", e), ("llama.cpp", lw)) for e in labels for lw in peers(e)]:
                lw = theirs[1]
                for bench in ("prefill", "decode"):
                    cells, meds = [], []
                    for side in (mine, theirs):
                        s = samples.get((model, thr, side, bench))
                        why = missing.get((model, thr, side))
                        if s:
                            med = statistics.median(s)
                            meds.append(med)
                            cells.append(f"{fmt(med)} ({fmt(min(s))}..{fmt(max(s))})")
                        else:
                            cells.append(f"not available: {why}" if why is not None else "not measured")
                    ratio = f"{meds[0] / meds[1]:.2f}" if len(meds) == 2 else "-"
                    rows.append([model, str(thr), bench, mine[1], cells[0], lw, cells[1], ratio])
                x, y = ids.get((model, thr, mine)), ids.get((model, thr, theirs))
                if x and y:
                    agree.append(f"{model}, {thr} thr, emu2 {mine[1]} vs llama.cpp {lw}: "
                                 f"{common_prefix(x, y)}/{min(len(x), len(y))} greedy tokens identical before the "
                                 f"first difference ({sum(p == q for p, q in zip(x, y))} equal positions)")
    if not rows:
        sys.exit("report_llama: no measurements in " + a.results)
    print_table(head, rows, a.markdown, strip=True)
    print()
    for r in recs:  # the machine's load when the run started and ended (the numbers depend on it)
        if r.get("bench") == "load":
            print(("- " if a.markdown else "") + f"load average (1, 5, 15 min) at the {r['when']}: {r['uptime']}")
    for line in agree:
        print(("- " if a.markdown else "") + line)


if __name__ == "__main__":
    main()
