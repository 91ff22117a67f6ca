"""Summarizes the JSON lines of tests/bench/run.sh into a table: per (model, threads, measurement)
the median rate over every repeat of every round, its min..max spread, ours / PyTorch, GFLOP/s,
and for decode the bytes per step, GB/s and the share of the copy bandwidth measured in the same run.

    python tests/bench/report.py RESULTS.jsonl [--markdown]
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict

ELEM = {"f32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "f16": 2, "float16": 2}


def load(path):
    recs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                recs.append(json.loads(line))
    return recs


def args_and_records():
    """The command line (RESULTS.jsonl [--markdown]) and the records in that file."""
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    return a, load(a.results)


def print_table(head, rows, markdown, strip=False):
    """Prints rows under head: a Markdown table, or columns padded to their widest cell (strip: without
    the trailing blanks). Shared with llama_cpp/report_llama.py."""
    sep = " | " if markdown else "  "
    if markdown:
        print("| " + sep.join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + sep.join(r) + " |")
        return
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        line = sep.join(c.ljust(w) for c, w in zip(r, widths))
        print(line.rstrip() if strip else line)


def rates(recs):
    """(model, threads, impl, bench, batch) -> rate samples over every repeat of every round."""
    out = defaultdict(list)
    for r in recs:
        if "times_s" in r:
            key = (r["model"], r["threads"], r["impl"], r["bench"], r["batch"])
            out[key] += [r["items"] / t for t in r["times_s"] if t > 0]
    return out


def main():
    a, recs = args_and_records()
    samples = rates(recs)
    work = {}  # (model, bench, batch) -> emu2's flop / bytes per repeat (same work for every impl)
    kv = {}
    stored = {}
    for r in recs:
        if r.get("impl") == "emu2" and "flop" in r:
            work[(r["model"], r["bench"], r["batch"])] = r
        if r.get("bench") == "decode_bytes":
            kv[(r["model"], r["batch"])] = r
        if r.get("bench") == "model":
            stored[r["model"]] = r
    bw, copy_bw, peak = {}, {}, {}
    for (model, threads, impl, bench, batch), s in samples.items():
        if bench == "memcpy":
            copy_bw[(model, threads)] = statistics.median(s) * 1e9
        if bench == "read_bw":
            bw[(model, threads)] = statistics.median(s) * 1e9
        if bench.startswith("fma_peak"):
            peak[(model, threads)] = statistics.median(s)
    for k, v in copy_bw.items():  # older runs had no read test: compare with the copy bandwidth
        bw.setdefault(k, v)
    # ours: "emu2" (f32 precision) and "emu2-bf16" (the bf16 precision, one row each); peers: PyTorch etc.
    peers = sorted({k[2] for k in samples if not k[2].startswith("emu2")})
    head = ["model", "thr", "measure", "batch", "emu2 (median, min..max)"]
    for p in peers:
        head += [f"{p} (median, min..max)", f"emu2/{p}"]
    head += ["emu2 GFLOP/s (of peak)"] + [f"{p} GFLOP/s" for p in peers] + ["emu2 MB/step, GB/s, of BW"]
    head += [f"{p} GB/s, of BW" for p in peers]
    rows = []
    keys = sorted({(k[0], k[1], k[3], k[4], k[2]) for k in samples
                   if k[2].startswith("emu2") and k[3] in ("vision", "prefill", "decode")},
                  key=lambda k: (k[0], k[1], ["vision", "prefill", "decode"].index(k[2]), k[3], k[4]))
    for model, thr, bench, batch, impl in keys:
        mine = samples[(model, thr, impl, bench, batch)]
        w = work.get((model, bench, batch), {})
        unit = w.get("unit", "")
        med = statistics.median(mine)
        label = bench if impl == "emu2" else f"{bench} {impl[len('emu2-'):]}"
        row = [model, str(thr), f"{label} ({unit})", str(batch), f"{med:.4g} ({min(mine):.4g}..{max(mine):.4g})"]
        gflops = []
        gbs = []
        per_item_flop = w.get("flop", 0) / w.get("items", 1)
        for p in peers:
            s = samples.get((model, thr, p, bench, batch))
            if s:
                pm = statistics.median(s)
                row += [f"{pm:.4g} ({min(s):.4g}..{max(s):.4g})", f"{med / pm:.2f}"]
            else:
                row += ["-", "-"]
        gflops.append(per_item_flop * med * 1e-9)
        for p in peers:
            s = samples.get((model, thr, p, bench, batch))
            gflops.append(per_item_flop * statistics.median(s) * 1e-9 if s else 0)
        pk = peak.get((model, thr))
        row += [(f"{g:.1f} ({g / pk:.0%})" if pk and bench != "decode" else f"{g:.1f}") if g else "-"
                for g in gflops]
        if impl.endswith("bf16") and pk and bench != "decode" and gflops[0]:
            # vdpbf16ps does twice the f32 FMA's multiply-adds: the bf16 precision's roof is 2x the peak
            row[-1 - len(peers)] = f"{gflops[0]:.1f} ({gflops[0] / (2 * pk):.0%} of 2x)"
        if bench == "decode" and (model, batch) in kv:
            kb = kv[(model, batch)]
            steps_per_s = med / batch
            b = kb["weight_bytes"] + kb["kv_bytes"]
            bwm = bw.get((model, thr), 0)
            row.append(f"{b * 1e-6:.0f}, {b * steps_per_s * 1e-9:.1f}, "
                       f"{b * steps_per_s / bwm:.0%}" if bwm else "-")
            src = ELEM.get(stored.get(model, {}).get("dtype", "f32"), 4)
            for p in peers:
                s = samples.get((model, thr, p, bench, batch))
                e = ELEM.get(p.split("-")[-1], 4)
                if not s or not bwm:
                    row.append("-")
                    continue
                pb = kb["weight_bytes"] * e / src + kb["kv_bytes"] * e / 4
                ps = statistics.median(s) / batch
                row.append(f"{pb * ps * 1e-9:.1f}, {pb * ps / bwm:.0%}")
        else:
            row += ["-"] * (1 + len(peers))
        rows.append(row)
    print_table(head, rows, a.markdown)
    for name, bench, table in (("copy bandwidth (read+written bytes)", "memcpy", copy_bw),
                               ("read bandwidth (the 'of BW' denominator)", "read_bw", bw)):
        for (model, thr), b in sorted(table.items()):
            s = samples.get((model, thr, "emu2", bench, 1))
            if s:
                print(f"{name} ({model}, {thr} threads): {b * 1e-9:.1f} GB/s (min {min(s):.1f}, max {max(s):.1f})")
    for (model, thr), p in sorted(peak.items()):
        s = next(v for k, v in samples.items() if k[:2] == (model, thr) and k[3].startswith("fma_peak"))
        print(f"f32 FMA peak ({model}, {thr} threads): {p:.1f} GFLOP/s (min {min(s):.1f}, max {max(s):.1f}); "
              f"GFLOP/s columns show (share of it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
