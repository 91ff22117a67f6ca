# tests/extra/pg.sh: the PostgreSQL extension's suite (tests/pg/): pg_regress (every function, error
# and setting), 8-session concurrency with batching and throughput, cancel/timeouts, worker restart,
# hostile inputs. Each script starts its own temporary cluster on loopback. Installs the extension
# built in $EMU2_BUILD/pg into the server's folders first (CREATE EXTENSION needs it there), which
# needs root (as in CI) or write access to them; skipped, saying why, when that or PostgreSQL 15 is
# missing. Prints one RESULT line adding up the scripts'.
. tests/cli/lib.sh
build=${EMU2_BUILD:-$(pwd)/build}
pg_bin=/usr/lib/postgresql/15/bin
scripts=(test_regress test_concurrency test_cancel test_worker_restart test_hostile test_gen_image)
if [ ! -x "$pg_bin/postgres" ] || [ ! -x "$pg_bin/pg_config" ]; then
    skip "PostgreSQL extension" "PostgreSQL 15 is not installed (postgresql-15, postgresql-server-dev-15)"
    finish; exit
fi
if [ ! -f "$build/pg/emu2.so" ]; then
    fail "PostgreSQL extension built" "no $build/pg/emu2.so (make BUILD=$build)"
    finish; exit
fi
pkglib=$("$pg_bin/pg_config" --pkglibdir); share=$("$pg_bin/pg_config" --sharedir)/extension
if [ ! -w "$pkglib" ] || [ ! -w "$share" ]; then
    skip "PostgreSQL extension" "cannot install into $pkglib and $share (run as root)"
    finish; exit
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    skip "PostgreSQL extension" "no postgres OS user to run the test clusters"
    finish; exit
fi
if out=$(make --no-print-directory -C "$build/pg" -f "$(pwd)/pg_emu2/Makefile" PG_CONFIG="$pg_bin/pg_config" \
        EMU2_LIB_A="$build/libemu2.a" EMU2_INCLUDE="$(pwd)/core/include" with_llvm=no install 2>&1); then
    ok "extension installed into $pkglib"
else
    fail "extension installed" "$(tail -n 3 <<<"$out")"
    finish; exit
fi
start=$(date +%s)
for s in "${scripts[@]}"; do
    echo "  -- tests/pg/$s.sh"
    out=$(bash "tests/pg/$s.sh" 2>&1)
    printf '%s\n' "$out" | grep -v '^RESULT ' | sed 's/^/  /'
    line=$(grep -E '^RESULT passed=[0-9]+ failed=[0-9]+ skipped=[0-9]+$' <<<"$out" | tail -n 1)
    if [ -z "$line" ]; then
        fail "tests/pg/$s.sh printed no RESULT line"
        continue
    fi
    read -r p f k < <(sed -E 's/RESULT passed=([0-9]+) failed=([0-9]+) skipped=([0-9]+)/\1 \2 \3/' <<<"$line")
    _p=$((_p + p)); _f=$((_f + f)); _s=$((_s + k))
done
echo "  PostgreSQL suite: $(($(date +%s) - start)) s"
finish
