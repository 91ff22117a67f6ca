#!/usr/bin/env bash
# tests/pg/test_concurrency.sh: 8 sessions caption a table of distinct held-out images at once
# (emu2 preloaded: the worker is registered at server start). Every caption must be its own row's
# (the engine's answer for that image, tests/data/heldout/torch_answers.txt), and the worker must
# have batched requests (> 1 per batch). Also: a parallel query, and aggregate captions/s with
# 8 sessions against 1 (printed; set PG_ROWS for more rows).
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

batches() { pg_sql "SELECT batches FROM emu2_status"; }

# one session: the first 64 rows
one=64
t0=$(now_ms)
pg_sql "INSERT INTO results SELECT id, 0, emu2_describe(img, '', 32) FROM imgs WHERE id <= $one" >/dev/null
t1=$(now_ms)
rate1=$(awk -v n=$one -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", n * 1000 / ms }')
b1=$(batches)

# eight sessions over all rows, each its own share (id % 8)
pg_sql "TRUNCATE results" >/dev/null
t0=$(now_ms)
pids=()
for k in $(seq 0 $((sessions - 1))); do
    pg_sql "INSERT INTO results SELECT id, $k, emu2_describe(img, '', 32) FROM imgs WHERE id % $sessions = $k" \
        >"$PG_TMP/s$k.log" 2>&1 &
    pids+=($!)
done
errs=0
for p in "${pids[@]}"; do wait "$p" || errs=$((errs + 1)); done
t1=$(now_ms)
rate8=$(awk -v n=$rows -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", n * 1000 / ms }')
[ $errs -eq 0 ] && ok "$sessions sessions finish without errors" || fail "$sessions sessions finish without errors" "$(cat "$PG_TMP"/s*.log | head -n 5)"
got=$(pg_sql "SELECT count(*) FROM results")
[ "$got" -eq "$rows" ] && ok "$rows captions" || fail "$rows captions" "got $got"
bad=$(pg_sql "SELECT count(*) FROM results r JOIN imgs i USING (id) WHERE r.caption IS DISTINCT FROM i.answer")
[ "$bad" -eq 0 ] && ok "0 mismatches between a row's image and its caption" ||
    fail "0 mismatches between a row's image and its caption" "$bad of $rows; e.g. $(pg_sql "SELECT r.id || ': ' || r.caption || ' vs ' || i.answer FROM results r JOIN imgs i USING (id) WHERE r.caption IS DISTINCT FROM i.answer LIMIT 3")"
status=$(pg_sql "SELECT batches - $b1, round(avg_batch_size::numeric, 2), max_batch_size, batch_sizes FROM emu2_status")
max_batch=$(pg_sql "SELECT max_batch_size FROM emu2_status")
[ "$max_batch" -gt 1 ] && ok "the worker ran batches of more than one request (max $max_batch)" ||
    fail "the worker ran batches of more than one request" "max_batch_size $max_batch"
echo "    throughput (tiny model, beam 5, 32 new tokens, emu2.threads=$PG_THREADS, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)):"
echo "      1 session:  $rate1 captions/s ($one rows)"
echo "      $sessions sessions: $rate8 captions/s ($rows rows), $(awk -v a=$rate8 -v b=$rate1 'BEGIN { printf "%.2f", a / b }')x"
echo "      status after the 8-session run: batches, avg batch size, max batch size, batch_sizes[k]: $status"

# the same for greedy search (no reference answers for it: throughput only)
pg_sql "TRUNCATE results" >/dev/null
greedy="'{\"num_beams\": 1}'"
t0=$(now_ms)
pg_sql "INSERT INTO results SELECT id, 0, emu2_describe(img, '', 32, $greedy) FROM imgs WHERE id <= $one" >/dev/null
g1=$(awk -v n=$one -v ms=$(($(now_ms) - t0)) 'BEGIN { printf "%.1f", n * 1000 / ms }')
pg_sql "TRUNCATE results" >/dev/null
t0=$(now_ms)
for k in $(seq 0 $((sessions - 1))); do
    pg_sql "INSERT INTO results SELECT id, $k, emu2_describe(img, '', 32, $greedy) FROM imgs WHERE id % $sessions = $k" >/dev/null &
done
wait
g8=$(awk -v n=$rows -v ms=$(($(now_ms) - t0)) 'BEGIN { printf "%.1f", n * 1000 / ms }')
echo "      greedy: 1 session $g1 captions/s, $sessions sessions $g8 captions/s, $(awk -v a=$g8 -v b=$g1 'BEGIN { printf "%.2f", a / b }')x"
pg_sql "SELECT count(*) FROM results" | grep -qx "$rows" && ok "greedy run: $rows captions" || fail "greedy run: $rows captions"

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
