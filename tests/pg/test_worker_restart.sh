#!/usr/bin/env bash
# tests/pg/test_worker_restart.sh: pg_terminate_backend() of the model worker during a query: that query errors
# within 1 s, the worker comes back by itself and a later query succeeds; the server never restarts.
# Once with emu2 preloaded (static worker), once without (worker launched on first use).
. tests/cli/lib.sh
. tests/pg/cluster.sh
trap pg_stop EXIT
img=$EMU2_ROOT/tests/data/heldout/000.jpg
now_ms() { echo $(($(date +%s%N) / 1000000)); }
long="SELECT length(emu2_describe(pg_read_binary_file('$img'), 'Describe the image in details:', 480,
                                  '{\"min_length\": 480, \"num_beams\": 64}'))"
short="SELECT emu2_describe(pg_read_binary_file('$img'), '', 32)"
expected=$(sed -n 1p "$EMU2_ROOT/tests/data/heldout/torch_answers.txt")

one_round() { # MODE
    local mode=$1 pm wpid bg t0 ms out newpid
    if ! pg_start $mode; then fail "$mode: cluster starts"; return; fi
    pm=$(head -n 1 "$PG_DATA/postmaster.pid")
    pg_sql "$short" >/dev/null # the worker is up (launched by this call without preloading)
    pg_psql -c "$long" >"$PG_TMP/long.out" 2>&1 &
    bg=$!
    for _ in $(seq 1 200); do
        [ "$(pg_sql "SELECT in_flight FROM emu2_status")" = 1 ] && break
        sleep 0.05
    done
    wpid=$(pg_sql "SELECT worker_pid FROM emu2_status")
    t0=$(now_ms)
    pg_sql "SELECT pg_terminate_backend($wpid)" >/dev/null
    wait $bg
    ms=$(($(now_ms) - t0))
    if grep -q "model worker stopped while serving this request" "$PG_TMP/long.out" && [ $ms -lt 1000 ]; then
        ok "$mode: the query being served errors in ${ms} ms"
    else
        fail "$mode: the query being served errors within 1 s" "${ms} ms: $(cat "$PG_TMP/long.out")"
    fi
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
