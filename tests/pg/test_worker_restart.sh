#!/usr/bin/env bash
# tests/pg/test_worker_restart.sh: pg_terminate_backend() of the model worker during a query: that query errors
# within 1 s, the worker comes back by itself and a later query succeeds; the server never restarts.
# Once with emu2 preloaded (static worker), once without (worker launched on first use).
. tests/cli/lib.sh
. tests/pg/cluster.sh
trap pg_stop EXIT
. tests/pg/long_query.sh

one_round() { # MODE
    local mode=$1 pm wpid t0 ms out newpid
    if ! pg_start $mode; then fail "$mode: cluster starts"; return; fi
    pm=$(head -n 1 "$PG_DATA/postmaster.pid")
    pg_sql "$short" >/dev/null # the worker is up (launched by this call without preloading)
    start_long
    wpid=$(pg_sql "SELECT worker_pid FROM emu2_status")
    end_long "$mode: the query being served errors" "SELECT pg_terminate_backend($wpid)" \
        "model worker stopped while serving this request"
    t0=$(now_ms)
    for _ in $(seq 1 100); do
        out=$(pg_sql "$short" 2>&1) && break
        sleep 0.1
    done
    ms=$(($(now_ms) - t0))
    newpid=$(pg_sql "SELECT worker_pid FROM emu2_status")
    if [ "$out" = "$expected" ] && [ -n "$newpid" ] && [ "$newpid" != "$wpid" ]; then
        ok "$mode: a later query succeeds on the restarted worker (after ${ms} ms)"
    else
        fail "$mode: a later query succeeds on the restarted worker" "$out; worker $wpid -> $newpid"
    fi
    if [ "$(head -n 1 "$PG_DATA/postmaster.pid")" = "$pm" ] && ! pg_server_restarted; then
        ok "$mode: the server never restarted"
    else
        fail "$mode: the server never restarted" "$(grep -i terminat "$PG_TMP/server.log" | head -n 3)"
    fi
    pg_stop
}
one_round preload
one_round dynamic
finish
