#!/usr/bin/env bash
# tests/pg/test_cancel.sh: a long generation ended by statement_timeout, by pg_cancel_backend and by
# emu2.request_timeout returns within 1 s; the worker drops the cancelled request (the next short
# query does not wait for it) and the next query succeeds.
. tests/cli/lib.sh
. tests/pg/cluster.sh
trap pg_stop EXIT
. tests/pg/long_query.sh
if ! pg_start preload; then fail "cluster starts"; finish; exit; fi

check_next() { # NAME: the next short query answers right, quickly (the worker dropped the long one)
    local t0 out ms
    t0=$(now_ms); out=$(pg_sql "$short" 2>&1); ms=$(($(now_ms) - t0))
    [ "$out" = "$expected" ] && [ $ms -lt 3000 ] && ok "$1: the next query succeeds at once (${ms} ms)" ||
        fail "$1: the next query succeeds at once" "$out (${ms} ms)"
}

# a timeout setting ends the long query: NAME SETTING PATTERN MAX_MS
timeout_case() {
    local t0 out ms
    t0=$(now_ms)
    out=$(pg_sql "SET $2; $long" 2>&1)
    ms=$(($(now_ms) - t0))
    if grep -q "$3" <<<"$out" && [ $ms -lt "$4" ]; then
        ok "$1: the query returns in ${ms} ms"
    else
        fail "$1: the query returns within 1 s of it" "${ms} ms: $out"
    fi
    check_next "${1%% *}"
}

timeout_case "statement_timeout 400 ms" "statement_timeout = '400ms'" "statement timeout" 1400

# pg_cancel_backend from another session, once the request is in the worker's hands
start_long "SET application_name = 'emu2_long'; "
end_long "pg_cancel_backend: the query returns" \
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'emu2_long'" \
    "canceling statement due to user request"
check_next "pg_cancel_backend"

timeout_case "emu2.request_timeout 300 ms" "emu2.request_timeout = '300ms'" "emu2.request_timeout" 1300

# the worker counted the dropped requests (it polls each request's cancel flag between decoder steps)
sleep 0.2
c=$(pg_sql "SELECT requests_cancelled FROM emu2_status")
[ "$c" -ge 3 ] && ok "the worker dropped the 3 cancelled requests" || fail "the worker dropped the 3 cancelled requests" "requests_cancelled = $c"
pg_server_restarted && fail "the server never restarted" || ok "the server never restarted"
finish
