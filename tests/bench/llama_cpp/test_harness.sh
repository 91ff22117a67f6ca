#!/usr/bin/env bash
# test_harness.sh: checks of the llama.cpp comparison's own parts on the shipped tiny model (seconds):
# the engine's driver (prompt of exactly P ids, exactly G greedy tokens, deterministic, argument errors,
# a refused quantization reported as "not available"), the report (ratios, not-available rows, the
# greedy agreement), and, when llama-cpp-python is installed, llama.cpp on the tiny model's GGUF
# against the engine on the same weights (the export and conversion keep the network: same greedy ids).
#
#   tests/bench/llama_cpp/test_harness.sh [BUILD]     (BUILD defaults to build)
# shellcheck disable=SC1091,SC2015  # lib.sh is sourced by path; ok() never fails
cd "$(dirname "$0")/../../.." || exit 1
BUILD=${1:-build}
. tests/cli/lib.sh
HERE=tests/bench/llama_cpp
TINY=models/emu2-tiny-digits
LPY=${LLAMA_VENV:-/work/venv-llama}/bin/python
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

make --no-print-directory BUILD="$BUILD" -j2 lib >/dev/null || { echo "cannot build $BUILD/libemu2.a"; exit 1; }
BIN=$T/bench_decode
if cc -std=c11 -Wall -Wextra -Werror -O2 -pthread -Icore/include $HERE/bench_decode.c "$BUILD/libemu2.a" \
      -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl -o "$BIN" 2>"$T/cc.txt"; then
    ok "bench_decode.c builds without warnings"
else
    fail "bench_decode.c builds without warnings" "$(head -5 "$T/cc.txt")"
    finish; exit
fi
# json FILE EXPR: evaluates EXPR over the list `r` of the file's JSON records
json() { python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]; print(($2))" "$1"; }

# ---- the prompt
for p in 128 40; do
    "$BIN" $TINY --print-prompt-ids --prompt-tokens $p >"$T/ids$p.jsonl" 2>"$T/err.txt"
    got=$(json "$T/ids$p.jsonl" "len(r[0]['ids']), r[0]['ids'][0]")
    [ "$got" = "($p, 1)" ] && ok "prompt of exactly $p ids, BOS first" || fail "prompt of exactly $p ids" "got $got"
done

# ---- a timed run: exactly G tokens, same ids twice, the record's fields
"$BIN" $TINY --weights f32 --prompt-tokens 40 --gen 12 --repeats 2 >"$T/run1.jsonl" 2>/dev/null
"$BIN" $TINY --weights f32 --prompt-tokens 40 --gen 12 --repeats 1 >"$T/run2.jsonl" 2>/dev/null
got=$(json "$T/run1.jsonl" "[x['bench'] for x in r], len(r[1]['generated_ids']), len(r[0]['times_s']), r[0]['items'], r[1]['items']")
[ "$got" = "(['prefill', 'decode'], 12, 2, 40, 11)" ] && ok "prefill + decode records, 12 tokens, 2 repeats" \
    || fail "prefill + decode records" "got $got"
a=$(json "$T/run1.jsonl" "r[1]['generated_ids']") b=$(json "$T/run2.jsonl" "r[1]['generated_ids']")
[ -n "$a" ] && [ "$a" = "$b" ] && ok "greedy ids are the same in two processes" || fail "greedy ids repeat" "$a vs $b"
rate=$(json "$T/run1.jsonl" "int(all(x['rate'] > 0 and all(t > 0 for t in x['times_s']) for x in r))")
[ "$rate" = 1 ] && ok "positive times and rates" || fail "positive times and rates"

# ---- errors
expect_err "no model folder: usage" "usage" "$BIN"
expect_err "--threads 0 refused" "bad argument" "$BIN" $TINY --threads 0
expect_err "a folder that is no model" "config|no such|open" "$BIN" "$T" --repeats 1
"$BIN" $TINY --quant int3 --weights bf16 >"$T/na.jsonl" 2>/dev/null; rc=$?
got=$(json "$T/na.jsonl" "r[0]['status'], bool(r[0]['reason'])")
[ $rc = 0 ] && [ "$got" = "('not available', True)" ] && ok "an unknown quantization is 'not available' with a reason" \
    || fail "not available" "rc $rc, $got"

# ---- the report: ratios from synthetic records, not-available rows, agreement
cat >"$T/synth.jsonl" <<'EOF'
{"model":"m","round":1,"impl":"emu2","bench":"prefill","weights":"f32","quant":"none","threads":1,"items":100,"times_s":[1.0,2.0,0.5]}
{"model":"m","round":1,"impl":"emu2","bench":"decode","weights":"f32","quant":"none","threads":1,"items":10,"times_s":[1.0],"generated_ids":[5,6,7,8]}
{"model":"m","round":1,"impl":"llama.cpp","bench":"prefill","weights":"f32","threads":1,"items":100,"times_s":[4.0]}
{"model":"m","round":1,"impl":"llama.cpp","bench":"decode","weights":"f32","threads":1,"items":10,"times_s":[2.0],"generated_ids":[5,6,9,8]}
{"model":"m","round":1,"impl":"emu2","bench":"status","weights":"bf16","quant":"int4","threads":1,"status":"not available","reason":"no kernel"}
{"model":"m","round":1,"impl":"llama.cpp","bench":"decode","weights":"q4_0","threads":1,"items":10,"times_s":[1.0]}
EOF
python3 $HERE/report_llama.py "$T/synth.jsonl" >"$T/report.txt" 2>&1
grep -qE '^m +1 +prefill +f32 +100 \(50\.\.200\) +f32 +25 \(25\.\.25\) +4\.00$' "$T/report.txt" \
    && ok "report: prefill median, spread, ratio" || fail "report: prefill row" "$(cat "$T/report.txt")"
grep -qE '^m +1 +decode +f32 +10 .* 5 \(5\.\.5\) +2\.00$' "$T/report.txt" && ok "report: decode ratio" \
    || fail "report: decode row" "$(cat "$T/report.txt")"
grep -qE 'decode +int4 +not available: no kernel +q4_0 +10 \(10\.\.10\) +-$' "$T/report.txt" \
    && ok "report: a 'not available' side has no ratio" || fail "report: not available row" "$(cat "$T/report.txt")"
grep -q '2/4 greedy tokens identical before the first difference (3 equal positions)' "$T/report.txt" \
    && ok "report: greedy agreement" || fail "report: agreement" "$(cat "$T/report.txt")"

# ---- llama.cpp on the same weights (needs the venv and the reference kit for the export)
PY=""
for p in tests/reference/.venv/bin/python /work/venv-ref/bin/python; do [ -x "$p" ] && { PY=$p; break; }; done
VER=$(sed -n 's/^llama-cpp-python==//p' $HERE/requirements.txt)
SDIST=${EMU2_BENCH_DIR:-/tmp/emu2-bench}/llama-cpp/sdist/llama_cpp_python-$VER/vendor/llama.cpp
if ! { [ -x "$LPY" ] && "$LPY" -c "import llama_cpp" 2>/dev/null; }; then
    skip "llama.cpp agrees with the engine" "llama-cpp-python is not installed ($LPY; tests/bench/run_llama_cpp.sh installs it)"
elif [ -z "$PY" ] || [ ! -f "$SDIST/convert_hf_to_gguf.py" ]; then
    skip "llama.cpp agrees with the engine" "no reference kit python or no converter at $SDIST (run_llama_cpp.sh fetches it)"
else
    "$PY" $HERE/export_models.py $TINY "$T/x" >/dev/null 2>&1
    PYTHONPATH="$SDIST/gguf-py:$SDIST" "$PY" "$SDIST/convert_hf_to_gguf.py" "$T/x/hf-llama" --outtype f32 \
        --outfile "$T/x/f32.gguf" >"$T/conv.txt" 2>&1 || fail "converter" "$(tail -3 "$T/conv.txt")"
    "$BIN" "$T/x/emu2-f32" --print-prompt-ids --prompt-tokens 40 >"$T/x/ids.jsonl"
    "$BIN" "$T/x/emu2-f32" --weights f32 --prompt-tokens 40 --gen 12 --repeats 1 >"$T/x/emu2.jsonl" 2>/dev/null
    "$LPY" $HERE/bench_llama.py "$T/x/f32.gguf" --weights f32 --prompt-ids "$T/x/ids.jsonl" --gen 12 \
        --repeats 1 >"$T/x/llama.jsonl" 2>"$T/x/llama.err"
    a=$(json "$T/x/emu2.jsonl" "r[1]['generated_ids']") b=$(json "$T/x/llama.jsonl" "r[1]['generated_ids']")
    [ -n "$a" ] && [ "$a" = "$b" ] && ok "llama.cpp (f32 GGUF) chooses the engine's 12 greedy tokens" \
        || fail "llama.cpp agrees with the engine" "emu2 $a, llama.cpp $b $(tail -2 "$T/x/llama.err")"
    "$LPY" $HERE/quantize_gguf.py "$T/x/f32.gguf" "$T/x/q4.gguf" q4_0 2>/dev/null && [ -s "$T/x/q4.gguf" ] \
        && ok "llama.cpp's quantizer writes q4_0" || fail "quantize q4_0"
fi
finish
