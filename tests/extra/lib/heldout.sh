# tests/extra/lib/heldout.sh: what the held-out accuracy extras (heldout_accuracy.sh, quant_accuracy.sh)
# share. Source it after tests/cli/lib.sh. (It lives in lib/ so that tests/run.sh does not run it.)

# heldout_setup NAME: sets EMU2, data, model, tmp (removed on exit), n and files (the n held-out JPEGs in
# label order). Without tests/data/heldout/labels.txt it reports NAME as skipped, prints the RESULT line
# and returns 1 (the caller then exits).
heldout_setup() {
    EMU2=${EMU2_BIN:-build/bin/emu2}
    [ -x "$EMU2" ] || EMU2=build/bin/emu2
    data=tests/data/heldout
    model=models/emu2-tiny-digits
    if [ ! -f "$data/labels.txt" ]; then
        skip "$1" "no $data/labels.txt"
        finish
        return 1
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    n=$(wc -l <"$data/labels.txt")
    files=()
    for i in $(seq 0 $((n - 1))); do files+=("$data/$(printf '%03d' "$i").jpg"); done
}

# same_lines A B: how many lines of files A and B are equal, line by line.
same_lines() { paste -d'\t' "$1" "$2" | awk -F'\t' '$1 == $2' | wc -l; }

# within_one_point A B N: whether counts A and B out of N differ by at most 1 percentage point.
within_one_point() {
    local diff=$(($1 > $2 ? $1 - $2 : $2 - $1))
    [ $((diff * 100)) -le "$3" ]
}
