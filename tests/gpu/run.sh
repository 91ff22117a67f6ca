#!/usr/bin/env bash
# tests/gpu/run.sh: the ONE command for a GPU machine: builds the engine and libemu2_cuda.so, runs
# every GPU test (each op against the CPU backend, the tiny model on CUDA against the CPU answers,
# random weights on the device), then the GPU benchmarks (full-size Emu2 shape, random bf16 weights:
# decode tokens/s at batch 1/8/32 against the measured copy bandwidth, vision images/s at batch 1/8
# against the measured bf16 matmul rate, and the HF transformers / PyTorch reference on the same
# shapes), and prints a short table.
#
# Before sending the repository, run tests/gpu/carry.sh on the Debian machine (the GPU machine
# lacks libturbojpeg, libpng, libsentencepiece, libjansson and cannot download them); then with the
# device tool:   run  command="tests/gpu/run.sh"  carry=[".gpu-deps"]  kind=nvidia-h200
# A device call may run 10 minutes at most: the parts can be run one call each on a warm machine
# (the build stays between calls):   tests/gpu/run.sh build | test | bench | all (default)
#
# Environment: BUILD (default build-gpu), OUT (where logs and results go; the device tool sets it),
# GPU_BENCH_STEPS (32), GPU_BENCH_REPEATS (3), GPU_BENCH_LAYERS (override the LLM layer count),
# GPU_SKIP_HF=1 (no reference run), GPU_SKIP_SANITIZER=1 (no compute-sanitizer pass),
# GPU_SKIP_QUANT=1 (no quantized-linears benchmark, tests/gpu/quant_bench.c),
# GPU_SKIP_GRAPHS=1 (no decode timing with CUDA graphs on / off, tests/gpu/graph_bench.c).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PART=${1:-all}
BUILD=${BUILD:-build-gpu}
OUTDIR=${OUT:-$ROOT/$BUILD/gpu-out}
mkdir -p "$OUTDIR" "$BUILD"
DEPS=$ROOT/.gpu-deps
JOBS=$(nproc 2>/dev/null || echo 4)
STEPS=${GPU_BENCH_STEPS:-32}
REPEATS=${GPU_BENCH_REPEATS:-3}
T0=$(date +%s)
status=0

say() { echo "== [$(($(date +%s) - T0))s] $*" >&2; }

# ------------------------------------------------------------------ environment
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
if [ -d "$DEPS/root/usr/include" ]; then
    export CPATH=$DEPS/root/usr/include${CPATH:+:$CPATH}
    export LIBRARY_PATH=$DEPS/root/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}
    export LD_LIBRARY_PATH=$DEPS/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
    say "no .gpu-deps/root: building against the system's libraries (run tests/gpu/carry.sh first if that fails)"
fi
GPU_LINE=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
GPU_MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -dc 0-9)
say "gpu: ${GPU_LINE:-none found}; nvcc: $("$NVCC" --version 2>/dev/null | tail -1); CUDA_HOME=$CUDA_HOME"

TESTS="test_backend_select test_random_weights test_cuda_ops test_cuda_model test_ops_attention test_ops_linear
       test_ops_misc test_model_generate test_api test_cuda_graphs test_cuda_graph_policy test_cuda_topk test_topk_op
       test_decoder_graph_parts"

# ------------------------------------------------------------------ build
build() {
    say "build ($BUILD, -j$JOBS)"
    local targets="lib cli cuda"
    for t in $TESTS; do targets="$targets $BUILD/tests/$t"; done
    if ! make --no-print-directory BUILD="$BUILD" CUDA_HOME="$CUDA_HOME" NVCC="$NVCC" -j"$JOBS" $targets \
        >"$OUTDIR/build.log" 2>&1; then
        tail -40 "$OUTDIR/build.log"
        say "BUILD FAILED (full log: $OUTDIR/build.log)"
        return 1
    fi
    grep -E "warning" "$OUTDIR/build.log" | head -20
    mkdir -p "$BUILD/bench"
    cc -std=c11 -Wall -Wextra -O2 -g -pthread -Icore/include -Icore -D_DEFAULT_SOURCE tests/bench/gpu_bench.c \
        "$BUILD/libemu2.a" -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl \
        -o "$BUILD/bench/gpu_bench" || return 1
    cc -std=c11 -Wall -Wextra -O2 -g -pthread -Icore/include -Icore -D_DEFAULT_SOURCE tests/gpu/quant_bench.c \
        "$BUILD/libemu2.a" -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl \
        -o "$BUILD/bench/quant_bench" || return 1
    cc -std=c11 -Wall -Wextra -O2 -g -pthread -Icore/include -Icore -D_DEFAULT_SOURCE tests/gpu/graph_bench.c \
        "$BUILD/libemu2.a" -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl \
        -o "$BUILD/bench/graph_bench" || return 1
    [ -f "$BUILD/libemu2_cuda.so" ] || { say "libemu2_cuda.so was not built"; return 1; }
}

# ------------------------------------------------------------------ tests
run_tests() {
    say "tests"
    local passed=0 failed=0 skipped=0 line
    for t in $TESTS; do
        local bin=$BUILD/tests/$t
        [ -x "$bin" ] || { echo "missing $bin"; failed=$((failed + 1)); continue; }
        EMU2_ROOT=$ROOT EMU2_SHARED=${EMU2_SHARED:-$DEPS/shared} "$bin" >"$OUTDIR/$t.log" 2>&1
        line=$(grep '^RESULT' "$OUTDIR/$t.log" | tail -1)
        [ -n "$line" ] || line="RESULT passed=0 failed=1 skipped=0"
        grep -E "FAIL|^  skip|device:|^    " "$OUTDIR/$t.log" | head -30
        echo "$t: $line"
        passed=$((passed + $(sed 's/.*passed=\([0-9]*\).*/\1/' <<<"$line")))
        failed=$((failed + $(sed 's/.*failed=\([0-9]*\).*/\1/' <<<"$line")))
        skipped=$((skipped + $(sed 's/.*skipped=\([0-9]*\).*/\1/' <<<"$line")))
    done
    # every op once more under compute-sanitizer (out-of-bounds and misaligned accesses, API errors)
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || ls "$CUDA_HOME"/bin/compute-sanitizer 2>/dev/null | head -1)
    if [ -n "$sanitizer" ] && [ "${GPU_SKIP_SANITIZER:-0}" != 1 ]; then
        if EMU2_ROOT=$ROOT timeout 180 "$sanitizer" --tool memcheck --error-exitcode 3 \
            "$BUILD/tests/test_cuda_ops" >"$OUTDIR/sanitizer.log" 2>&1; then
            echo "compute-sanitizer memcheck test_cuda_ops: clean"
        else
            tail -30 "$OUTDIR/sanitizer.log"
            echo "compute-sanitizer memcheck test_cuda_ops: FAILED (log: $OUTDIR/sanitizer.log)"
            failed=$((failed + 1))
        fi
    fi
    echo "tests: $passed passed, $failed failed, $skipped skipped" | tee "$OUTDIR/tests.txt"
    [ "$failed" = 0 ]
}

# ------------------------------------------------------------------ benchmarks
# A model folder with the full-size config (layers reduced only when the GPU cannot hold them) and
# the tiny model's tokenizer (random weights need no real one).
bench_model() {
    local cfg=$DEPS/shared/fixtures/emu2-configs/Emu2/config.json dir=$BUILD/gpu-bench-model
    [ -f "$cfg" ] || { say "no $cfg (run tests/gpu/carry.sh): benchmarking the tiny config"; cfg=models/emu2-tiny-digits/config.json; }
    rm -rf "$dir" && mkdir -p "$dir"
    cp models/emu2-tiny-digits/tokenizer.model models/emu2-tiny-digits/*token*.json "$dir"/ 2>/dev/null
    local layers want
    layers=$(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$cfg" | head -1)
    want=$layers
    if [ -n "${GPU_BENCH_LAYERS:-}" ]; then
        want=$GPU_BENCH_LAYERS
    elif [ -n "$GPU_MIB" ] && [ "$layers" -gt 40 ]; then
        # bf16 LLaMA-33B layer ~1.07 GB + its f32 KV cache at batch 32 ~0.25 GB; ~14 GB for the rest
        local fit=$(((GPU_MIB / 1024 - 14) * 100 / 135))
        [ "$fit" -lt "$want" ] && want=$fit
    fi
    sed "s/\"num_hidden_layers\": *[0-9]*/\"num_hidden_layers\": $want/" "$cfg" >"$dir/config.json"
    [ "$want" != "$layers" ] && say "this GPU holds $want of the $layers LLM layers: decode numbers are for $want layers"
    echo "$dir"
}

run_bench() {
    say "benchmarks"
    local dir
    dir=$(bench_model) || return 1
    local res=$OUTDIR/bench.jsonl
    : >"$res"
    "$BUILD/bench/gpu_bench" "$dir" --device cuda --steps "$STEPS" --repeats "$REPEATS" >>"$res" 2>"$OUTDIR/gpu_bench.log"
    local rc=$?
    cat "$OUTDIR/gpu_bench.log" >&2
    # the decode linears with bf16 / int8 / int4 weights on the full-size shape (tests/gpu/quant_bench.c)
    if [ "${GPU_SKIP_QUANT:-0}" != 1 ]; then
        say "quantized decode linears"
        "$BUILD/bench/quant_bench" --repeats "$REPEATS" >>"$res" 2>"$OUTDIR/quant_bench.log" || rc=1
        cat "$OUTDIR/quant_bench.log" >&2
    fi
    # decode steps with CUDA graphs on and off, alternating in one process (tests/gpu/graph_bench.c):
    # the tiny model (launch-bound: where graphs matter) and the benchmark shape
    if [ "${GPU_SKIP_GRAPHS:-0}" != 1 ]; then
        say "decode with CUDA graphs on / off"
        "$BUILD/bench/graph_bench" models/emu2-tiny-digits --batches 1,8,32 --steps "$STEPS" --rounds 5 \
            | sed 's/"bench":"decode_graphs"/"bench":"decode_graphs_tiny"/' >>"$res" 2>"$OUTDIR/graph_bench.log" || rc=1
        "$BUILD/bench/graph_bench" "$dir" --random --batches 1,8 --steps 16 --rounds "$REPEATS" \
            >>"$res" 2>>"$OUTDIR/graph_bench.log" || rc=1
        cat "$OUTDIR/graph_bench.log" >&2
    fi
    if [ "${GPU_SKIP_HF:-0}" != 1 ]; then
        say "reference (HF transformers / PyTorch)"
        PYTHONUNBUFFERED=1 python3 tests/bench/gpu_hf_reference.py "$dir/config.json" --steps "$STEPS" \
            --repeats "$REPEATS" >>"$res" 2>"$OUTDIR/hf.log" || { tail -20 "$OUTDIR/hf.log"; say "reference failed"; }
    fi
    print_table "$res" "$dir/config.json"
    return $rc
}

print_table() {
    local res=$1 cfg=$2
    echo
    echo "GPU: ${GPU_LINE:-?}   model: Emu2 shape ($(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$cfg" | head -1) LLM layers), random bf16 weights"
    awk '
    function field(s, k,   r) { r = s; if (!match(r, "\"" k "\":\"?[^,\"}]*")) return ""; r = substr(r, RSTART, RLENGTH);
                                 sub("^\"" k "\":\"?", "", r); return r }
    { b = field($0, "bench"); n = field($0, "batch"); rate[b, n] = field($0, "rate"); frac[b, n] = field($0, "fraction")
      off[b, n] = field($0, "off"); launched[b, n] = field($0, "launched_fraction") }
    END {
        printf "%-22s %6s %14s %14s %9s %12s\n", "measurement", "batch", "engine", "reference", "ratio", "of ceiling"
        printf "%-22s %6s %14.1f %14s %9s %12s\n", "copy bandwidth GB/s", "-", rate["copy", 0], "", "", ""
        printf "%-22s %6s %14.1f %14s %9s %12s\n", "bf16 matmul TFLOP/s", "-", rate["matmul", 8192], "", "", ""
        split("1 8 32", bs, " ")
        for (i = 1; i <= 3; i++) { n = bs[i]; if (!(("decode", n) in rate)) continue
            r = rate["hf_decode", n]
            printf "%-22s %6s %14.1f %14s %9s %11.1f%%\n", "decode tokens/s", n, rate["decode", n],
                   r == "" ? "-" : sprintf("%.1f", r), r == "" ? "-" : sprintf("%.2fx", rate["decode", n] / r), 100 * frac["decode", n] }
        split("bf16 int8 int4 int4-g32", qf, " ")
        for (f = 1; f <= 4; f++) for (i = 1; i <= 3; i++) { n = bs[i]; b = "linears_" qf[f]; if (!((b, n) in rate)) continue
            printf "%-22s %6s %14.1f %14s %9s %11.1f%%\n", "linears " qf[f] " tok/s", n, rate[b, n], "-", "-", 100 * frac[b, n] }
        split("decode_graphs_tiny decode_graphs", gb, " "); split("tiny shape", gn, " ")
        for (g = 1; g <= 2; g++) for (i = 1; i <= 3; i++) { n = bs[i]; b = gb[g]; if (!((b, n) in rate)) continue
            printf "%-22s %6s %14.1f %14s %9s %12s\n", "graphs tok/s " gn[g], n, rate[b, n], sprintf("%.1f", off[b, n]),
                   sprintf("%.2fx", rate[b, n] / off[b, n]), sprintf("%.0f%% graphed", 100 * launched[b, n]); graphs = 1 }
        if (graphs) print "(graphs rows: engine = decode with CUDA graphs, reference = the same model without, alternating)"
        split("1 8", is, " ")
        for (i = 1; i <= 2; i++) { n = is[i]; if (!(("vision", n) in rate)) continue
            r = rate["torch_vision", n]
            printf "%-22s %6s %14.2f %14s %9s %11.1f%%\n", "vision images/s", n, rate["vision", n],
                   r == "" ? "-" : sprintf("%.2f", r), r == "" ? "-" : sprintf("%.2fx", rate["vision", n] / r), 100 * frac["vision", n] }
    }' "$res" | tee "$OUTDIR/table.txt"
}

case "$PART" in
build) build || status=1 ;;
test) run_tests || status=1 ;;
bench) run_bench || status=1 ;;
all)
    if build; then
        run_tests || status=1
        run_bench || status=1
    else
        status=1
    fi
    ;;
*) echo "usage: tests/gpu/run.sh [build|test|bench|all]" >&2; exit 2 ;;
esac
say "done (status $status)"
exit $status
