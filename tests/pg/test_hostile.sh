#!/usr/bin/env bash
# tests/pg/test_hostile.sh: hostile images through emu2_describe: the fixture images, corrupt
# variants made from them (truncated, bit-flipped, header-only), and 10,000 random byte strings
# (plain, behind a JPEG marker, behind a PNG header of 64 x 64 pixels) in one query. Every row must answer or fail
# with a user-facing SQLSTATE (never XX000), and the worker and the server must survive.
. tests/cli/lib.sh
. tests/pg/cluster.sh
trap pg_stop EXIT
n_random=${PG_RANDOM:-10000}
if ! pg_start preload; then fail "cluster starts"; finish; exit; fi
wpid=$(pg_sql "SELECT worker_pid FROM emu2_status")
# fixture images readable by the server
fx=$PG_TMP/fixtures; mkdir -p "$fx"
cp "$EMU2_ROOT"/models/emu2-tiny-digits/examples/*.jpg "$fx/"
if [ -d "$SHARED/fixtures/seed-images" ]; then
    cp "$SHARED"/fixtures/seed-images/* "$fx/"
else
    skip "seed fixture images" "no $SHARED/fixtures/seed-images (set EMU2_SHARED)"
fi
head -c 1048576 /dev/urandom >"$PG_TMP/random.bin"
chmod -R a+rX "$fx" "$PG_TMP/random.bin"

pg_sql "
CREATE FUNCTION try_describe(b bytea) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
    PERFORM emu2_describe(b, '', 8, '{\"num_beams\": 1}');
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END \$\$;
CREATE TABLE fixtures AS SELECT f AS name, pg_read_binary_file('$fx/' || f) AS b FROM pg_ls_dir('$fx') f;
CREATE TABLE blob AS SELECT pg_read_binary_file('$PG_TMP/random.bin') AS b;" >/dev/null

nf=$(pg_sql "SELECT count(*) FROM fixtures")
fok=$(pg_sql "SELECT count(*) FROM fixtures WHERE try_describe(b) = 'ok'")
[ "$fok" = "$nf" ] && ok "all $nf fixture images are described" ||
    fail "all $nf fixture images are described" "$(pg_sql "SELECT name || ': ' || try_describe(b) FROM fixtures WHERE try_describe(b) <> 'ok'")"

# corrupt variants: truncations, bit flips at seeded random places, the first bytes only
codes=$(pg_sql "
SELECT setseed(0.42);
WITH v AS (
    SELECT substring(b FROM 1 FOR (length(b) * f)::int) AS b FROM fixtures, unnest(ARRAY[0.02, 0.1, 0.5, 0.9, 0.99]) f
    UNION ALL
    SELECT set_byte(b, (random() * (length(b) - 1))::int, (random() * 255)::int) FROM fixtures, generate_series(1, 6)
    UNION ALL
    SELECT set_byte(set_byte(set_byte(b, 4 + (random() * 60)::int, 255), 20 + (random() * 200)::int, 0),
                    (random() * (length(b) - 1))::int, 0) FROM fixtures, generate_series(1, 6)
    UNION ALL
    SELECT substring(b FROM 1 FOR n) FROM fixtures, unnest(ARRAY[2, 8, 33, 100]) n)
SELECT try_describe(b) AS code, count(*) FROM v GROUP BY 1 ORDER BY 1" | tail -n +2)
echo "    corrupt variants by outcome: $(tr '\n' ' ' <<<"$codes")"
if grep -qvE '^(ok|22P03|0A000|54000|22023)\|' <<<"$codes"; then
    fail "corrupt variants: every row answers or fails cleanly" "$codes"
else
    ok "corrupt variants: every row answers or fails cleanly"
fi

# random byte strings, one query
t0=$(date +%s%N)
codes=$(pg_sql "
SELECT setseed(0.17);
WITH r AS (
    SELECT i, substring((SELECT b FROM blob) FROM 1 + (random() * 1040000)::int FOR 1 + (random() * 2000)::int) AS b
    FROM generate_series(1, $n_random) i)
SELECT try_describe(CASE i % 3 WHEN 0 THEN b
                               WHEN 1 THEN '\\xffd8ffe000104a464946'::bytea || b
                               ELSE '\\x89504e470d0a1a0a0000000d494844520000004000000040080200'::bytea || b END)
       AS code, count(*)
FROM r GROUP BY 1 ORDER BY 1" | tail -n +2)
ms=$((($(date +%s%N) - t0) / 1000000))
echo "    $n_random random strings in ${ms} ms, by outcome: $(tr '\n' ' ' <<<"$codes")"
total=$(awk -F'|' '{ s += $2 } END { print s + 0 }' <<<"$codes")
if [ "$total" = "$n_random" ] && ! grep -qvE '^(ok|22P03|0A000|54000|22023)\|' <<<"$codes"; then
    ok "$n_random random byte strings in one query: each answers or fails cleanly"
else
    fail "$n_random random byte strings in one query: each answers or fails cleanly" "$codes"
fi

[ "$(pg_sql "SELECT worker_pid FROM emu2_status")" = "$wpid" ] && ok "the worker survived" || fail "the worker survived"
out=$(pg_sql "SELECT emu2_describe(pg_read_binary_file('$fx/blue_black_1_top_left.jpg'), '', 32)")
[ "$out" = "[blue, black, 1, top left]" ] && ok "the worker still answers right" || fail "the worker still answers right" "$out"
pg_server_restarted && fail "the server never restarted" || ok "the server never restarted"
finish
