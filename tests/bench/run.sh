#!/usr/bin/env bash
# run.sh: what `make bench` runs. The engine (bench_engine.c) and the PyTorch reference (bench_torch.py)
# measured alternately, round after round, on the tiny model and on a ~1B-parameter random model, at
# each thread count; then one table (tests/bench/report.py) with medians, spreads and ratios.
#
# Environment:
#   BUILD=build            build folder (the library is built there when missing or stale)
#   BENCH_QUICK=1          a short run: tiny model only, one round
#   BENCH_MODELS="tiny large"   BENCH_THREADS="1 <nproc>"   BENCH_ROUNDS=2   BENCH_REPEATS=3
#   BENCH_TORCH_DTYPES="f32 bf16"  PyTorch compute dtypes to time ("f32" alone skips PyTorch's bf16 kernels)
#   BENCH_PRECISION="f32 bf16"  emu2 precisions to time (bf16: --precision bf16, rows "... bf16"; docs/PERFORMANCE.md)
#   EMU2_BENCH_DIR=/tmp/emu2-bench   where the random model is cached (never in the repository)
#   PY=...                 python with the reference kit (default: tests/reference/.venv, /work/venv-ref,
#                          else tests/reference/.venv is created from tests/reference/requirements.txt)
#   BENCH_OUT=FILE         where the JSON lines go (default $BUILD/bench/results-<time>.jsonl)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
NPROC=$(nproc 2>/dev/null || echo 2)
QUICK=${BENCH_QUICK:-0}
MODELS=${BENCH_MODELS:-$([ "$QUICK" = 1 ] && echo tiny || echo "tiny large")}
THREADS=${BENCH_THREADS:-$( [ "$NPROC" -gt 1 ] && echo "1 $NPROC" || echo 1)}
ROUNDS=${BENCH_ROUNDS:-$([ "$QUICK" = 1 ] && echo 1 || echo 2)}
REPEATS=${BENCH_REPEATS:-3}
TORCH_DTYPES=${BENCH_TORCH_DTYPES:-f32 bf16}
PRECISIONS=${BENCH_PRECISION:-f32 bf16}
BENCH_DIR=${EMU2_BENCH_DIR:-/tmp/emu2-bench}

# ---- the engine and the bench binary
make --no-print-directory BUILD="$BUILD" -j"${JOBS:-2}" lib >/dev/null
BIN=$BUILD/bench/bench_engine
stale=0
for f in "$BUILD/libemu2.a" tests/bench/bench_engine.c tests/bench/roofline.c tests/bench/roofline.h tests/bench/bench_util.h tests/bench/decode_bytes.h; do
    [ -x "$BIN" ] && [ ! "$BIN" -ot "$f" ] || stale=1
done
if [ "$stale" = 1 ]; then
    mkdir -p "$BUILD/bench"
    ${CC:-cc} -std=c11 -Wall -Wextra -O2 -g -pthread -Icore/include -Icore -D_DEFAULT_SOURCE \
        tests/bench/bench_engine.c tests/bench/roofline.c "$BUILD/libemu2.a" \
        -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl -o "$BIN"
fi

# ---- the reference kit
if [ -z "${PY:-}" ]; then
    for p in tests/reference/.venv/bin/python /work/venv-ref/bin/python; do
        if [ -x "$p" ]; then PY=$p; break; fi
    done
fi
if [ -z "${PY:-}" ]; then
    echo "bench: creating tests/reference/.venv (pip install -r tests/reference/requirements.txt)" >&2
    python3 -m venv tests/reference/.venv
    tests/reference/.venv/bin/pip install -q -r tests/reference/requirements.txt
    PY=tests/reference/.venv/bin/python
fi

# ---- the models
LARGE=$BENCH_DIR/emu2-random-1b-bf16
model_dir() { case $1 in tiny) echo models/emu2-tiny-digits ;; large) echo "$LARGE" ;; *) echo "$1" ;; esac; }
# per model: images per call, prompt length, decode steps (the tiny model needs more work per timing)
model_args() { case $1 in tiny) echo "--images 16 --prompt 64 --steps 64" ;; *) echo "--images 2 --prompt 64 --steps 8" ;; esac; }
for m in $MODELS; do
    if [ "$m" = large ] && [ ! -f "$LARGE/config.json" ]; then
        echo "bench: writing the random ~1B model to $LARGE (once; a few minutes)" >&2
        "$PY" tests/bench/make_random_model.py "$LARGE" --dtype bf16
    fi
done

OUT=${BENCH_OUT:-$BUILD/bench/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
tag() { sed -u "s/^{/{\"model\":\"$1\",\"round\":$2,/" | grep '^{' >>"$OUT" || true; }

echo "bench: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $NPROC cores;" \
     "models: $MODELS; threads: $THREADS; rounds: $ROUNDS; repeats: $REPEATS; emu2: $PRECISIONS; PyTorch: $TORCH_DTYPES" >&2
start=$(date +%s)
for m in $MODELS; do
    dir=$(model_dir "$m")
    dtype=$(grep -o '"torch_dtype": *"[a-z0-9]*"' "$dir/config.json" | sed 's/.*"\([a-z0-9]*\)"$/\1/')
    echo "{\"bench\":\"model\",\"dir\":\"$dir\",\"dtype\":\"${dtype:-float32}\"}" | tag "$m" 0
    for t in $THREADS; do
        for r in $(seq 1 "$ROUNDS"); do
            echo "== $m, $t threads, round $r/$ROUNDS" >&2
            for p in $PRECISIONS; do
                # the bf16 precision changes only linears with bf16 weights at M >= 8 rows: vision,
                # prefill and decode at batch 8 (batch 1 keeps f32)
                [ "$p" = bf16 ] && [ "${dtype:-float32}" = float32 ] && continue
                extra=$([ "$p" = f32 ] && echo "--only memcpy,vision,prefill,decode" || echo "--only vision,prefill,decode --batches 8")
                # shellcheck disable=SC2046,SC2086
                "$BIN" "$dir" --threads "$t" --repeats "$REPEATS" --precision "$p" $extra \
                    $(model_args "$m") | tag "$m" "$r"
            done
            for d in $TORCH_DTYPES; do
                # shellcheck disable=SC2046
                "$PY" tests/bench/bench_torch.py "$dir" --threads "$t" --repeats "$REPEATS" --dtype "$d" \
                    $(model_args "$m") | tag "$m" "$r"
            done
        done
    done
done
echo "bench: $(($(date +%s) - start)) s; results in $OUT" >&2
"$PY" tests/bench/report.py "$OUT"
