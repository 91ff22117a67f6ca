#!/usr/bin/env bash
# run_llama_cpp.sh: what `make bench-llama` runs. The engine against llama.cpp (through llama-cpp-python)
# on the same weights: the decoder of a ~1B-parameter random Emu2 model exported as a plain LLaMA
# checkpoint and converted to GGUF by llama.cpp's own converter and quantizer. Same thread count, a
# prompt of 128 token ids + 128 greedy tokens, prefill and decode tokens/s, the two engines' processes
# alternating round after round; then one table (tests/bench/llama_cpp/report_llama.py).
#
# Pairs (emu2 <-> llama.cpp): f32 <-> f32, bf16 <-> bf16 and f16, int8 <-> q8_0, int4 <-> q4_0, where
# the engine's int4 runs twice: "int4-g32" (every linear 4-bit, group 32: q4_0's bits exactly) and
# "int4" (its default preset: mlp.down_proj stays int8).
#
# Environment:
#   BUILD=build              build folder of the engine (libemu2.a is built there when missing or stale)
#   BENCH_QUICK=1            a sanity run: the tiny model, one round
#   BENCH_THREADS="1 <nproc>"  BENCH_ROUNDS=3  BENCH_REPEATS=1 (timed runs per process, after a warm-up)
#   BENCH_PROMPT=128  BENCH_GEN=128   prompt token ids (BOS included) and generated tokens
#   BENCH_LLAMA_TYPES="f32 bf16 f16 q8_0 q4_0"   which pairs to run (by llama.cpp's type)
#   BENCH_EMU2_INT4="int4-g32 int4"   the engine's int4 presets to compare with q4_0
#   BENCH_PRECISION="f32 bf16"   bf16 adds the engine's bf16 weights with the bf16 precision ("bf16-dot":
#                            activations rounded to bf16, bf16 dot products) against llama.cpp's bf16
#   BENCH_LLAMA_RECIPE=matched   q8_0/q4_0 keep token embeddings and lm_head in bf16 as the engine does;
#                                "default" = llama-quantize's own recipe (q4_0: output matrix in q6_K)
#   BENCH_LLAMA_FLASH_ATTN=on    llama.cpp's flash attention (what its "auto" picks on CPU); "off"
#   BENCH_MODEL_DIR=DIR      an Emu2 safetensors folder to use instead of the random ~1B model
#   EMU2_BENCH_DIR=/tmp/emu2-bench   caches: models, exports, GGUFs, the llama-cpp-python sdist
#   EMU2_SHARED=../shared    the LLaMA tokenizer for the random model ($EMU2_SHARED/fixtures/llama-tokenizer)
#   LLAMA_VENV=/work/venv-llama   created from tests/bench/llama_cpp/requirements.txt when missing (the
#                            llama.cpp build takes a long while on 2 cores; it runs under nice -n 19)
#   PY=...                   the reference kit's python (torch: the random model, the export, llama.cpp's
#                            converter); default tests/reference/.venv, /work/venv-ref, else created
#   BENCH_OUT=FILE           the JSON lines (default $BUILD/bench/llama-<time>.jsonl)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
HERE=tests/bench/llama_cpp
BUILD=${BUILD:-build}
NPROC=$(nproc 2>/dev/null || echo 2)
QUICK=${BENCH_QUICK:-0}
THREADS=${BENCH_THREADS:-$( [ "$NPROC" -gt 1 ] && echo "1 $NPROC" || echo 1)}
ROUNDS=${BENCH_ROUNDS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
REPEATS=${BENCH_REPEATS:-1}
PROMPT=${BENCH_PROMPT:-128}
GEN=${BENCH_GEN:-128}
TYPES=${BENCH_LLAMA_TYPES:-f32 bf16 f16 q8_0 q4_0}
INT4=${BENCH_EMU2_INT4:-int4-g32 int4}
PRECISIONS=${BENCH_PRECISION:-f32 bf16}
RECIPE=${BENCH_LLAMA_RECIPE:-matched}
FLASH=${BENCH_LLAMA_FLASH_ATTN:-on}
BENCH_DIR=${EMU2_BENCH_DIR:-/tmp/emu2-bench}
SHARED=${EMU2_SHARED:-$ROOT/../shared}
LLAMA_VENV=${LLAMA_VENV:-/work/venv-llama}
REQ=$HERE/requirements.txt
LLAMA_VERSION=$(sed -n 's/^llama-cpp-python==//p' "$REQ")
say() { echo "bench-llama: $*" >&2; }

# ---- the engine's driver (public API only)
make --no-print-directory BUILD="$BUILD" -j"${JOBS:-2}" lib >/dev/null
BIN=$BUILD/bench/bench_decode
if [ ! -x "$BIN" ] || [ "$BIN" -ot "$BUILD/libemu2.a" ] || [ "$BIN" -ot $HERE/bench_decode.c ]; then
    mkdir -p "$BUILD/bench"
    ${CC:-cc} -std=c11 -Wall -Wextra -O2 -g -pthread -Icore/include $HERE/bench_decode.c "$BUILD/libemu2.a" \
        -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl -o "$BIN"
fi

# ---- llama-cpp-python (built from its sdist with -march=native, as pip does by default)
LPY=$LLAMA_VENV/bin/python
if ! { [ -x "$LPY" ] && "$LPY" -c "import llama_cpp" 2>/dev/null; }; then
    say "installing llama-cpp-python $LLAMA_VERSION into $LLAMA_VENV (builds llama.cpp: long on 2 cores)"
    [ -x "$LPY" ] || python3 -m venv "$LLAMA_VENV"
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF}" \
    CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-2} \
        nice -n 19 "$LLAMA_VENV/bin/pip" install -q --no-binary llama-cpp-python -r "$REQ"
fi
# llama.cpp's converter is shipped in the same sdist (vendor/llama.cpp), not in the wheel
SDIST=$BENCH_DIR/llama-cpp/sdist/llama_cpp_python-$LLAMA_VERSION
CONVERT=$SDIST/vendor/llama.cpp/convert_hf_to_gguf.py
if [ ! -f "$CONVERT" ]; then
    say "fetching the llama-cpp-python $LLAMA_VERSION sdist for llama.cpp's converter"
    mkdir -p "$BENCH_DIR/llama-cpp/sdist"
    "$LLAMA_VENV/bin/pip" download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_VERSION" \
        -d "$BENCH_DIR/llama-cpp/sdist"
    tar -xzf "$BENCH_DIR/llama-cpp/sdist/llama_cpp_python-$LLAMA_VERSION.tar.gz" -C "$BENCH_DIR/llama-cpp/sdist"
fi

# ---- the reference kit (torch): the random model, the export, the converter
if [ -z "${PY:-}" ]; then
    for p in tests/reference/.venv/bin/python /work/venv-ref/bin/python; do
        if [ -x "$p" ]; then PY=$p; break; fi
    done
fi
if [ -z "${PY:-}" ]; then
    say "creating tests/reference/.venv (pip install -r tests/reference/requirements.txt)"
    python3 -m venv tests/reference/.venv
    tests/reference/.venv/bin/pip install -q -r tests/reference/requirements.txt
    PY=tests/reference/.venv/bin/python
fi

# ---- the models: Emu2 folders (f32, bf16) and GGUFs, all holding the same (bf16) values
if [ -n "${BENCH_MODEL_DIR:-}" ]; then
    SRC=$BENCH_MODEL_DIR NAME=$(basename "$SRC")
elif [ "$QUICK" = 1 ]; then
    SRC=models/emu2-tiny-digits NAME=tiny
else
    SRC=$BENCH_DIR/emu2-random-1b-bf16 NAME=large
    if [ ! -f "$SRC/config.json" ]; then
        say "writing the random ~1B model to $SRC (once; a few minutes)"
        "$PY" tests/bench/make_random_model.py "$SRC" --dtype bf16
    fi
fi
WORK=$BENCH_DIR/llama-cpp/$NAME
"$PY" $HERE/export_models.py "$SRC" "$WORK" --tokenizer "$SHARED/fixtures/llama-tokenizer/tokenizer.model" >&2
gguf() { case $1 in q8_0|q4_0) echo "$WORK/llama-$1-$RECIPE.gguf" ;; *) echo "$WORK/llama-$1.gguf" ;; esac; }
NEED=$TYPES  # the GGUFs to make: q8_0 and q4_0 are quantized from the f32 one
for t in $TYPES; do
    case $t in f32|bf16|f16) ;; q8_0|q4_0) NEED="f32 $NEED" ;; *)
        say "unknown type '$t' in BENCH_LLAMA_TYPES (f32 bf16 f16 q8_0 q4_0)"; exit 2 ;; esac
done
for t in f32 bf16 f16 q8_0 q4_0; do
    case " $NEED " in *" $t "*) ;; *) continue ;; esac
    out=$(gguf "$t")
    [ -f "$out" ] && continue
    say "converting to $out"
    case $t in
        q8_0|q4_0) "$LPY" $HERE/quantize_gguf.py "$(gguf f32)" "$out" "$t" --recipe "$RECIPE" >"$out.log" 2>&1 \
               || { tail -5 "$out.log" >&2; say "llama.cpp's quantizer failed for $t (log: $out.log)"; exit 1; } ;;
        *) PYTHONPATH="$SDIST/vendor/llama.cpp/gguf-py:$SDIST/vendor/llama.cpp" \
               "$PY" "$CONVERT" "$WORK/hf-llama" --outtype "$t" --outfile "$out.partial" >"$out.log" 2>&1 \
               || { tail -5 "$out.log" >&2; say "llama.cpp's converter failed for $t (log: $out.log)"; exit 1; }
           mv "$out.partial" "$out" ;;
    esac
done

# ---- the prompt: exactly PROMPT token ids from the engine's tokenizer, fed to both engines
IDS=$WORK/prompt-$PROMPT.jsonl
"$BIN" "$WORK/emu2-bf16" --print-prompt-ids --prompt-tokens "$PROMPT" >"$IDS"

OUT=${BENCH_OUT:-$BUILD/bench/llama-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
tag() { sed -u "s/^{/{\"model\":\"$NAME\",\"round\":$1,/" | grep '^{' >>"$OUT" || true; }
load() { echo "{\"bench\":\"load\",\"when\":\"$1\",\"uptime\":\"$(uptime | sed 's/.*load average: //')\"}" | tag 0; }

# one process per (engine, weights): emu2 WEIGHTS QUANT | llama TYPE
# (a 5th argument "bf16": the bf16 precision, labelled WEIGHTS-dot)
emu2() { "$BIN" "$WORK/emu2-$1" --quant "$2" --weights "$1${5:+-dot}" --precision "${5:-f32}" --threads "$3" \
             --repeats "$REPEATS" --prompt-tokens "$PROMPT" --gen "$GEN" | tag "$4"; }
llama() { "$LPY" $HERE/bench_llama.py "$(gguf "$1")" --weights "$1" --threads "$2" --repeats "$REPEATS" \
              --prompt-ids "$IDS" --gen "$GEN" --flash-attn "$FLASH" | tag "$3"; }
has() { case " $TYPES " in *" $1 "*) return 0 ;; esac; return 1; }

say "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $NPROC cores; model $NAME ($SRC);" \
    "threads: $THREADS; rounds: $ROUNDS; repeats: $REPEATS; prompt $PROMPT + $GEN tokens; llama.cpp: $TYPES" \
    "(quant recipe $RECIPE, flash attention $FLASH); load average now: $(uptime | sed 's/.*load average: //')"
load start
start=$(date +%s)
for t in $THREADS; do
    for r in $(seq 1 "$ROUNDS"); do
        say "== $t threads, round $r/$ROUNDS"
        if has f32; then emu2 f32 none "$t" "$r"; llama f32 "$t" "$r"; fi
        if has bf16 || has f16; then emu2 bf16 none "$t" "$r"; fi
        if has bf16; then llama bf16 "$t" "$r"; fi
        if has bf16 && [[ " $PRECISIONS " == *" bf16 "* ]]; then emu2 bf16 none "$t" "$r" bf16; fi
        if has f16; then llama f16 "$t" "$r"; fi
        if has q8_0; then emu2 bf16 int8 "$t" "$r"; llama q8_0 "$t" "$r"; fi
        if has q4_0; then for q in $INT4; do emu2 bf16 "$q" "$t" "$r"; done; llama q4_0 "$t" "$r"; fi
    done
done
load end
say "$(($(date +%s) - start)) s; load average now: $(uptime | sed 's/.*load average: //'); results in $OUT"
"$LPY" $HERE/report_llama.py "$OUT"
