#!/usr/bin/env bash
# tests/pg/test_cancel.sh: a long generation ended by statement_timeout, by pg_cancel_backend and by
# emu2.request_timeout returns within 1 s; the worker drops the cancelled request (the next short
# query does not wait for it) and the next query succeeds.
. tests/cli/lib.sh
. tests/pg/cluster.sh
trap pg_stop EXIT
img=$EMU2_ROOT/tests/data/heldout/000.jpg
if ! pg_start preload; then fail "cluster starts"; finish; exit; fi
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# about 20 s of work on the tiny model: 64 beams, 480 forced tokens
long="SELECT length(emu2_describe(pg_read_binary_file('$img'), 'Describe the image in details:', 480,
                                  '{\"min_length\": 480, \"num_beams\": 64}'))"
short="SELECT emu2_describe(pg_read_binary_file('$img'), '', 32)"
expected=$(sed -n 1p "$EMU2_ROOT/tests/data/heldout/torch_answers.txt")

check_next() { # NAME: the next short query answers right, quickly (the worker dropped the long one)
    local t0 out ms
    t0=$(now_ms); out=$(pg_sql "$short" 2>&1); ms=$(($(now_ms) - t0))
    [ "$out" = "$expected" ] && [ $ms -lt 3000 ] && ok "$1: the next query succeeds at once (${ms} ms)" ||
        fail "$1: the next query succeeds at once" "$out (${ms} ms)"
}

# statement_timeout
t0=$(now_ms)
out=$(pg_sql "SET statement_timeout = '400ms'; $long" 2>&1)
ms=$(($(now_ms) - t0))
if grep -q "statement timeout" <<<"$out" && [ $ms -lt 1400 ]; then
    ok "statement_timeout 400 ms: the query returns in ${ms} ms"
else
    fail "statement_timeout 400 ms: the query returns within 1 s of it" "${ms} ms: $out"
fi
check_next "statement_timeout"

# pg_cancel_backend from another session, once the request is in the worker's hands
pg_psql -c "SET application_name = 'emu2_long'; $long" >"$PG_TMP/long.out" 2>&1 &
bg=$!
for _ in $(seq 1 200); do
    [ "$(pg_sql "SELECT in_flight FROM emu2_status")" = 1 ] && break
    sleep 0.05
done
t0=$(now_ms)
pg_sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'emu2_long'" >/dev/null
wait $bg
ms=$(($(now_ms) - t0))
if grep -q "canceling statement due to user request" "$PG_TMP/long.out" && [ $ms -lt 1000 ]; then
    ok "pg_cancel_backend: the query returns in ${ms} ms"
else
    fail "pg_cancel_backend: the query returns within 1 s" "${ms} ms: $(cat "$PG_TMP/long.out")"
fi
check_next "pg_cancel_backend"

# emu2.request_timeout
t0=$(now_ms)
out=$(pg_sql "SET emu2.request_timeout = '300ms'; $long" 2>&1)
ms=$(($(now_ms) - t0))
if grep -q "emu2.request_timeout" <<<"$out" && [ $ms -lt 1300 ]; then
    ok "emu2.request_timeout 300 ms: the query returns in ${ms} ms"
else
    fail "emu2.request_timeout 300 ms: the query returns within 1 s of it" "${ms} ms: $out"
fi
check_next "emu2.request_timeout"

# the worker counted the dropped requests (it polls each request's cancel flag between decoder steps)
sleep 0.2
c=$(pg_sql "SELECT requests_cancelled FROM emu2_status")
[ "$c" -ge 3 ] && ok "the worker dropped the 3 cancelled requests" || fail "the worker dropped the 3 cancelled requests" "requests_cancelled = $c"
pg_server_restarted && fail "the server never restarted" || ok "the server never restarted"
finish
