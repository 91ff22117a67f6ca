#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD_DIR: runs every libFuzzer target in BUILD_DIR/fuzz for FUZZ_SECONDS each
# (default 60), starting from tests/fuzz/seeds/<name>/ and keeping what it finds in a scratch corpus.
# Prints a RESULT line (one test per target) so tests/run.sh can count it.
set -u
build=${1:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export EMU2_SHARED="${EMU2_SHARED:-$(cd "$root/.." && pwd)/shared}"
export EMU2_FUZZ_TOKENIZER="${EMU2_FUZZ_TOKENIZER:-$EMU2_SHARED/fixtures/llama-tokenizer}"
# ASan's leak checker is on; UBSan findings abort so libFuzzer reports them.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
passed=0 failed=0 skipped=0
shopt -s nullglob
targets=("$build"/fuzz/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
    echo "  skip fuzz: no targets built in $build/fuzz (make BUILD=$build FUZZ=1 fuzz-build)"
    echo "RESULT passed=0 failed=0 skipped=1"
    exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    name=$(basename "$t"); what=${name#fuzz_}
    corpus="$scratch/$what"; mkdir -p "$corpus"
    seeds=()
    [ -d "tests/fuzz/seeds/$what" ] && seeds=("tests/fuzz/seeds/$what")
    log="$scratch/$name.log"
    if "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$scratch/$name-" "$corpus" "${seeds[@]}" >"$log" 2>&1; then
        runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -n 1)
        echo "  ok   $name (${secs}s, ${runs:-?})"
        passed=$((passed + 1))
    else
        echo "  FAIL $name"; tail -n 40 "$log" | sed 's/^/    /'
        for a in "$scratch/$name-"*; do
            [ -f "$a" ] && { cp "$a" "$root/fuzz-artifacts-$(basename "$a")" 2>/dev/null; echo "    kept input: fuzz-artifacts-$(basename "$a")"; }
        done
        failed=$((failed + 1))
    fi
done
echo "RESULT passed=$passed failed=$failed skipped=$skipped"
[ "$failed" -eq 0 ]
