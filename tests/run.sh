#!/usr/bin/env bash
# tests/run.sh: runs every test program and adds up their RESULT lines.
# Usage: tests/run.sh BUILD_DIR...  (the Makefile calls it; each BUILD_DIR holds tests/* and bin/emu2;
#        the unit and CLI tests run once per build, e.g. plain and ASan; tests/extra/*.sh run once)
# Each program prints "RESULT passed=N failed=N skipped=N"; a program that dies without that line
# counts as one failure. Ends with "N passed, N failed, N skipped" and exits non-zero on any failure.
set -u
[ $# -gt 0 ] || set -- build
root=$(cd "$(dirname "$0")/.." && pwd)
export EMU2_ROOT="$root"
export EMU2_SHARED="${EMU2_SHARED:-$(cd "$root/.." && pwd)/shared}"
[ -d "$EMU2_SHARED/fixtures" ] || echo "note: no fixtures at $EMU2_SHARED (set EMU2_SHARED); tests that need them skip"
passed=0 failed=0 skipped=0
failed_names=()

run_one() { # name, command...
    local name=$1; shift
    echo "== $name"
    local out rc
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    local line
    line=$(printf '%s\n' "$out" | grep -E '^RESULT passed=[0-9]+ failed=[0-9]+ skipped=[0-9]+$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "  FAIL $name: exited $rc without a RESULT line"
        failed=$((failed + 1)); failed_names+=("$name")
        return
    fi
    local p f s
    p=$(sed -E 's/.*passed=([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$line")
    s=$(sed -E 's/.*skipped=([0-9]+).*/\1/' <<<"$line")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "  FAIL $name: exited $rc"
        f=1
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    [ "$f" -gt 0 ] && failed_names+=("$name")
}

cd "$root"
for build in "$@"; do
    export EMU2_BIN="$root/$build/bin/emu2" EMU2_BUILD="$root/$build"
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        run_one "$build/$(basename "$t")" "$t"
    done
    for t in tests/cli/test_*.sh; do
        [ -f "$t" ] || continue
        run_one "$build/$(basename "$t")" bash "$t"
    done
done
if [ "${EMU2_SKIP_EXTRA:-0}" != 1 ]; then
    # the extras run once, with the first (plain) build
    export EMU2_BIN="$root/$1/bin/emu2" EMU2_BUILD="$root/$1"
    for t in tests/extra/*.sh; do
        [ -f "$t" ] || continue
        run_one "$(basename "$t")" bash "$t"
    done
fi

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
