# tests/pg/long_query.sh: what the cancel and worker-restart tests share: a long query (about 20 s of
# work on the tiny model: 64 beams, 480 forced tokens) to interrupt, a short one and its expected answer.
# Source it after tests/pg/cluster.sh.
img=$EMU2_ROOT/tests/data/heldout/000.jpg
long="SELECT length(emu2_describe(pg_read_binary_file('$img'), 'Describe the image in details:', 480,
                                  '{\"min_length\": 480, \"num_beams\": 64}'))"
short="SELECT emu2_describe(pg_read_binary_file('$img'), '', 32)"
expected=$(sed -n 1p "$EMU2_ROOT/tests/data/heldout/torch_answers.txt")

# start_long [SQL-PREFIX]: runs the long query in another session (output in $PG_TMP/long.out, its pid
# in long_pid) and waits until the model worker holds it.
start_long() {
    pg_psql -c "${1:-}$long" >"$PG_TMP/long.out" 2>&1 &
    long_pid=$!
    for _ in $(seq 1 200); do
        [ "$(pg_sql "SELECT in_flight FROM emu2_status")" = 1 ] && break
        sleep 0.05
    done
}

# end_long WHAT SQL PATTERN: runs SQL, which must end the long query with PATTERN in its output within
# 1 s; reports "WHAT in N ms" or "WHAT within 1 s".
end_long() {
    local t0 ms
    t0=$(now_ms)
    pg_sql "$2" >/dev/null
    wait "$long_pid"
    ms=$(($(now_ms) - t0))
    if grep -q "$3" "$PG_TMP/long.out" && [ $ms -lt 1000 ]; then
        ok "$1 in ${ms} ms"
    else
        fail "$1 within 1 s" "${ms} ms: $(cat "$PG_TMP/long.out")"
    fi
}
