#!/usr/bin/env bash
# tests/pg/test_concurrency.sh: 8 sessions caption a table of distinct held-out images at once
# (emu2 preloaded: the worker is registered at server start). Every caption must be its own row's
# (the engine's answer for that image, tests/data/heldout/torch_answers.txt), and the worker must
# have batched requests (> 1 per batch), with static batches (default) and continuous batching. Also:
# a session timed out mid-run leaves the others intact; a parallel query; aggregate captions/s with 8
# sessions against 1, both modes, beam and greedy (printed; set PG_ROWS for more rows).
. tests/cli/lib.sh
. tests/pg/cluster.sh
trap pg_stop EXIT
data=$EMU2_ROOT/tests/data/heldout
rows=${PG_ROWS:-256}
sessions=8
if [ ! -f "$data/torch_answers.txt" ]; then
    skip "concurrency" "no $data/torch_answers.txt"; finish; exit
fi
# one engine thread: on a small shared machine a 2-thread pool waits on preempted threads at every op
PG_THREADS=${PG_THREADS:-1}
if ! pg_start preload; then fail "cluster starts"; finish; exit; fi
answers=$PG_TMP/answers.txt
head -n "$rows" "$data/torch_answers.txt" >"$answers"; chmod 644 "$answers"
pg_sql "CREATE TABLE answers(id serial, answer text);
        COPY answers(answer) FROM '$answers';
        CREATE TABLE imgs AS SELECT a.id, a.answer,
            pg_read_binary_file('$data/' || lpad((a.id - 1)::text, 3, '0') || '.jpg') AS img FROM answers a;
        CREATE TABLE results(id int, session int, caption text);" >/dev/null
n=$(pg_sql "SELECT count(DISTINCT md5(img)) FROM imgs")
[ "$n" -eq "$rows" ] && ok "$rows distinct images loaded" || fail "$rows distinct images loaded" "got $n"

# mode on|off: emu2.continuous_batching (off: static batches); the worker applies it at the next round
mode() {
    pg_sql "ALTER SYSTEM SET emu2.continuous_batching = $1" >/dev/null && pg_sql "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
}
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.1f", n * 1000 / (ms > 0 ? ms : 1) }'; }
# one_session OPTS: R = captions/s of one session over the first $one rows
one=64
one_session() {
    local t0
    pg_sql "TRUNCATE results" >/dev/null
    t0=$(now_ms)
    pg_sql "INSERT INTO results SELECT id, 0, emu2_describe(img, '', 32$1) FROM imgs WHERE id <= $one" >/dev/null
    R=$(rate $one $(($(now_ms) - t0)))
}
# eight_sessions OPTS: R = captions/s of 8 sessions over all rows, each its own share (id % 8);
# errs = sessions that failed
eight_sessions() {
    local t0 k p pids=()
    pg_sql "TRUNCATE results" >/dev/null
    t0=$(now_ms)
    for k in $(seq 0 $((sessions - 1))); do
        pg_sql "INSERT INTO results SELECT id, $k, emu2_describe(img, '', 32$1) FROM imgs WHERE id % $sessions = $k" \
            >"$PG_TMP/s$k.log" 2>&1 &
        pids+=($!)
    done
    errs=0
    for p in "${pids[@]}"; do wait "$p" || errs=$((errs + 1)); done
    R=$(rate $rows $(($(now_ms) - t0)))
}
mismatches() { pg_sql "SELECT count(*) FROM results r JOIN imgs i USING (id) WHERE r.caption IS DISTINCT FROM i.answer"; }
status_cols() { pg_sql "SELECT batches, round(avg_batch_size::numeric, 2), max_batch_size, batch_sizes FROM emu2_status"; }
reset_counts() { # the status counters add up since the server started: remember where a run began
    base_batches=$(pg_sql "SELECT batches FROM emu2_status")
}
greedy=", '{\"num_beams\": 1}'"
declare -A status

# PG_ROUNDS rounds (default 1) alternate the modes and the session counts, so a change in the load
# of a shared machine hits all of them; printed: median (min..max) per setting
rounds=${PG_ROUNDS:-1}
declare -A rates
add_rate() { rates[$1]="${rates[$1]:-} $2"; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
spread() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { printf "%s (%s..%s)", a[int((NR + 1) / 2)], a[1], a[NR] }'; }
for round in $(seq 1 "$rounds"); do
    for m in on off; do
        mode $m
        one_session ""; add_rate "$m:b1" "$R"
        reset_counts
        eight_sessions ""; add_rate "$m:b8" "$R"
        got=$(pg_sql "SELECT count(*) FROM results"); bad=$(mismatches)
        if [ "$round" -gt 1 ]; then # later rounds measure; they only fail on a wrong answer
            [ $errs -eq 0 ] && [ "$got" -eq "$rows" ] && [ "$bad" -eq 0 ] ||
                fail "round $round, continuous $m: $rows captions, 0 mismatches" "errors $errs, captions $got, mismatches $bad"
        else
            [ $errs -eq 0 ] && ok "continuous $m: $sessions sessions finish without errors" ||
                fail "continuous $m: $sessions sessions finish without errors" "$(cat "$PG_TMP"/s*.log | head -n 5)"
            [ "$got" -eq "$rows" ] && ok "continuous $m: $rows captions" || fail "continuous $m: $rows captions" "got $got"
            [ "$bad" -eq 0 ] && ok "continuous $m: 0 mismatches between a row's image and its caption" ||
                fail "continuous $m: 0 mismatches between a row's image and its caption" "$bad of $rows; e.g. $(pg_sql "SELECT r.id || ': ' || r.caption || ' vs ' || i.answer FROM results r JOIN imgs i USING (id) WHERE r.caption IS DISTINCT FROM i.answer LIMIT 3")"
            max_batch=$(pg_sql "SELECT max_batch_size FROM emu2_status")
            [ "$max_batch" -gt 1 ] && ok "continuous $m: the worker ran batches of more than one request (max $max_batch)" ||
                fail "continuous $m: the worker ran batches of more than one request" "max_batch_size $max_batch"
        fi
        status[$m]="$(status_cols); the last 8-session beam run: $(( $(pg_sql "SELECT batches FROM emu2_status") - base_batches )) batches"
        one_session "$greedy"; add_rate "$m:g1" "$R"
        eight_sessions "$greedy"; add_rate "$m:g8" "$R"
        if [ "$round" -eq 1 ]; then
            pg_sql "SELECT count(*) FROM results" | grep -qx "$rows" && ok "continuous $m: greedy run, $rows captions" ||
                fail "continuous $m: greedy run, $rows captions"
        fi
    done
done
echo "    throughput (tiny model, 32 new tokens, emu2.threads=$PG_THREADS, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), $rounds round(s), captions/s median (min..max); 1 session: $one rows, $sessions sessions: $rows rows):"
for m in on off; do
    echo "      emu2.continuous_batching = $m:"
    for kind in b:"beam 5" g:"greedy"; do
        k=${kind%%:*}
        echo "        ${kind#*:}: 1 session $(spread "${rates[$m:${k}1]}"), $sessions sessions $(spread "${rates[$m:${k}8]}"), $(awk -v a="$(median "${rates[$m:${k}8]}")" -v b="$(median "${rates[$m:${k}1]}")" 'BEGIN { printf "%.2f", a / b }')x"
    done
    echo "        status after the beam runs (totals since start: batches, avg size, max size, batch_sizes[k]): ${status[$m]}"
done
mode on

# a session cancelled (statement_timeout) while its requests decode among the others' leaves them
# intact (continuous batching: the cancelled requests leave a running decode)
pg_sql "TRUNCATE results" >/dev/null
pids=()
for k in $(seq 0 $((sessions - 1))); do
    pg_sql "INSERT INTO results SELECT id, $k, emu2_describe(img, '', 32) FROM imgs WHERE id % $sessions = $k" \
        >"$PG_TMP/s$k.log" 2>&1 &
    pids+=($!)
done
pg_sql "SET statement_timeout = '150ms'; SELECT count(emu2_describe(img, '', 32)) FROM imgs" >"$PG_TMP/cancelled.log" 2>&1
errs=0
for p in "${pids[@]}"; do wait "$p" || errs=$((errs + 1)); done
grep -q "statement timeout" "$PG_TMP/cancelled.log" && ok "the timed-out session ends with its error" ||
    fail "the timed-out session ends with its error" "$(cat "$PG_TMP/cancelled.log")"
got=$(pg_sql "SELECT count(*) FROM results"); bad=$(mismatches)
[ $errs -eq 0 ] && [ "$got" -eq "$rows" ] && [ "$bad" -eq 0 ] &&
    ok "the other $sessions sessions: $rows captions, 0 mismatches" ||
    fail "the other $sessions sessions: $rows captions, 0 mismatches" "errors $errs, captions $got, mismatches $bad"

# a parallel query: parallel workers call emu2_describe too; answers still right
plan=$(pg_sql "SET max_parallel_workers_per_gather = 4; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
               SET min_parallel_table_scan_size = 0; ALTER TABLE imgs SET (parallel_workers = 4);
               EXPLAIN (COSTS OFF) SELECT count(*) FROM imgs WHERE emu2_describe(img, '', 32) <> answer")
if grep -q "Parallel Seq Scan" <<<"$plan"; then
    ok "the planner runs emu2_describe in a parallel scan"
    wrong=$(pg_sql "SET max_parallel_workers_per_gather = 4; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
                    SET min_parallel_table_scan_size = 0;
                    SELECT count(*) FROM imgs WHERE id <= 64 AND emu2_describe(img, '', 32) IS DISTINCT FROM answer")
    [ "$wrong" = 0 ] && ok "parallel query: 0 mismatches" || fail "parallel query: 0 mismatches" "$wrong"
else
    fail "the planner runs emu2_describe in a parallel scan" "$plan"
fi
pg_server_restarted && fail "the server never restarted" || ok "the server never restarted"
finish
