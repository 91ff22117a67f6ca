#!/usr/bin/env bash
# tests/pg/test_regress.sh: the pg_regress suite (tests/pg/sql, tests/pg/expected) against a fresh
# cluster where emu2 is NOT preloaded: the worker is launched by the first call.
. tests/cli/lib.sh
. tests/pg/cluster.sh
trap pg_stop EXIT
regress=$("$PG_BIN/pg_config" --pkglibdir)/pgxs/src/test/regress/pg_regress
tests=(emu2_functions emu2_errors emu2_gucs)
if [ ! -x "$regress" ]; then
    skip "pg_regress" "no $regress (postgresql-server-dev-15)"
    finish; exit
fi
if ! pg_start; then
    fail "cluster starts"; finish; exit
fi
pg_sql "CREATE DATABASE emu2_regress" && pg_psql -d emu2_regress -c "CREATE EXTENSION emu2"
out=$PG_TMP/regress
pg_as mkdir -p "$out"
pg_as "$regress" --use-existing --host="$PG_TMP" --port="$PG_PORT" --user=postgres --dbname=emu2_regress \
    --inputdir="$EMU2_ROOT/tests/pg" --outputdir="$out" "${tests[@]}" >"$PG_TMP/regress.log" 2>&1
for t in "${tests[@]}"; do
    if grep -qE "^(ok|test) +[0-9]* *$t .*(ok|\.\.\. ok)" "$PG_TMP/regress.log" ||
       grep -qE "^ok [0-9]+ +- $t " "$PG_TMP/regress.log" || grep -qE "$t +\.\.\. ok" "$PG_TMP/regress.log"; then
        ok "pg_regress $t"
    else
        fail "pg_regress $t" "$(grep -E "$t" "$PG_TMP/regress.log" | head -n 2)"
    fi
done
if [ -s "$out/regression.diffs" ]; then
    echo "    regression.diffs:"
    head -n 80 "$out/regression.diffs" | sed 's/^/    /'
fi
pg_server_restarted && fail "the server never restarted" || ok "the server never restarted"
finish
