#!/usr/bin/env bash
# tests/pg/test_gen_image.sh: emu2_generate_image through SQL on an Emu2-Gen model (tests/models/gen-tiny):
# a PNG of the requested size (signature and IHDR read with get_byte), the same seed gives the same bytes
# and another seed other bytes, an input image with "[]" in the prompt, bad options (width 12, steps 0,
# guidance -1) are 22023 errors naming the option and the worker goes on, the status view shows gen-tiny.
. tests/cli/lib.sh
PG_MODEL=$(pwd)/tests/models/gen-tiny
. tests/pg/cluster.sh
trap pg_stop EXIT
# the server reads the input image itself (pg_read_binary_file): an absolute path; the seed image, else
# the repository's copy of it
seed_image=$(realpath -q "$SHARED/fixtures/seed-images/red_white_3_bottom_left.jpg")
[ -r "$seed_image" ] || seed_image=$(pwd)/models/emu2-tiny-digits/examples/red_white_3_bottom_left.jpg
if ! pg_start; then fail "cluster starts"; finish; exit; fi

call="emu2_generate_image('a red circle', '{}', '{\"width\": 64, \"height\": 48, \"steps\": 4, \"seed\": 1}')"
# "png,width,height": the PNG signature (8 bytes) and the IHDR width/height (big-endian, bytes 16..23);
# MATERIALIZED: one call, not one per get_byte
png_facts() { # EXPR (a bytea)
    pg_sql "WITH g AS MATERIALIZED (SELECT $1 AS b)
            SELECT (substr(b, 1, 8) = '\\x89504e470d0a1a0a'::bytea)::text || ',' ||
                   ((get_byte(b, 16)::bigint << 24) | (get_byte(b, 17) << 16) | (get_byte(b, 18) << 8) | get_byte(b, 19)) || ',' ||
                   ((get_byte(b, 20)::bigint << 24) | (get_byte(b, 21) << 16) | (get_byte(b, 22) << 8) | get_byte(b, 23))
            FROM g" 2>&1
}

t0=$(now_ms)
out=$(png_facts "$call")
ms=$(($(now_ms) - t0))
[ "$out" = "true,64,48" ] && ok "64x48, 4 steps: a PNG whose IHDR says 64 x 48 (${ms} ms, with the model load)" ||
    fail "64x48, 4 steps: a PNG whose IHDR says 64 x 48" "$out"
worker=$(pg_sql "SELECT worker_pid FROM emu2_status")

out=$(pg_sql "SELECT md5($call)" 2>&1)
again=$(pg_sql "SELECT md5($call)" 2>&1)
other=$(pg_sql "SELECT md5(emu2_generate_image('a red circle', '{}',
               '{\"width\": 64, \"height\": 48, \"steps\": 4, \"seed\": 2}'))" 2>&1)
[ ${#out} -eq 32 ] && [ "$out" = "$again" ] && ok "seed 1 twice: the same bytes" ||
    fail "seed 1 twice: the same bytes" "$out / $again"
[ ${#other} -eq 32 ] && [ "$other" != "$out" ] && ok "seed 2: other bytes than seed 1" ||
    fail "seed 2: other bytes than seed 1" "$out / $other"

out=$(png_facts "emu2_generate_image('[]a red circle', ARRAY[pg_read_binary_file('$seed_image')],
                 '{\"width\": 32, \"height\": 40, \"steps\": 2, \"seed\": 3}')")
[ "$out" = "true,32,40" ] && ok "an input image and \"[]\" in the prompt: a 32 x 40 PNG" ||
    fail "an input image and \"[]\" in the prompt: a 32 x 40 PNG" "$out"

# "SQLSTATE: message" of a failing call, caught in the same session (which must survive it)
error_of() { # EXPR
    pg_sql "DO \$\$ BEGIN PERFORM $1;
            EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM; END \$\$" 2>&1 |
        sed -n 's/.*caught //p'
}
out=$(error_of "emu2_generate_image('[][]', ARRAY[pg_read_binary_file('$seed_image')])")
grep -q "^22023: .*2 image placeholders but 1 image" <<<"$out" && ok "two placeholders, one image: 22023 ($out)" ||
    fail "two placeholders, one image: 22023" "$out"

bad_option() { # OPTIONS KEY
    local out
    out=$(error_of "emu2_generate_image('a red circle', '{}', '$1')")
    if grep -q "^22023: emu2 option \"$2\"" <<<"$out"; then
        ok "$1: 22023 naming \"$2\" (${out#22023: })"
    else
        fail "$1: 22023 naming \"$2\"" "$out"
    fi
}
bad_option '{"width": 12}' width
bad_option '{"height": 20, "steps": 2}' height
bad_option '{"steps": 0}' steps
bad_option '{"guidance": -1}' guidance
bad_option '{"size": 64}' size

# an error inside the worker: a PNG input whose header is fine but whose data is cut off
out=$(error_of "emu2_generate_image('[]', ARRAY[substr($call, 1, 60)])")
grep -q "^22P03: .*truncated" <<<"$out" && ok "a truncated input PNG: 22P03 from the worker (${out#22P03: })" ||
    fail "a truncated input PNG: 22P03 from the worker" "$out"

out=$(png_facts "emu2_generate_image('a red circle', '{}', '{\"width\": 16, \"height\": 8, \"steps\": 1}')")
[ "$out" = "true,16,8" ] && ok "after the errors the next call works (16 x 8)" ||
    fail "after the errors the next call works" "$out"

# 8 calls reached the worker, the truncated PNG failed there (bad options and placeholder counts are
# refused in the backend)
out=$(pg_sql "SELECT model_state || ',' || model_path || ',' || (worker_pid = ${worker:-0}) || ',' ||
              requests_served || ',' || requests_failed FROM emu2_status" 2>&1)
IFS=, read -r state path alive served failed <<<"$out"
if [ "$state" = ready ] && [ "$path" = "$PG_MODEL" ] && [ "$alive" = true ] && [ "$served" = 7 ] &&
    [ "$failed" = 1 ]; then
    ok "status view: ready, model_path = gen-tiny, the same worker, $served requests served, $failed failed"
else
    fail "status view: ready, model_path = gen-tiny" "$out"
fi
finish
