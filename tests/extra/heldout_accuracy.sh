# The engine on 500 held-out synthetic images (tests/data/heldout, made by
# tests/reference/gen_heldout.py): caption accuracy against the true labels must equal the PyTorch
# reference's within 1 point, and the engine must give the reference's answer on >= 99% of images.
. tests/cli/lib.sh
EMU2=${EMU2_BIN:-build/bin/emu2}
[ -x "$EMU2" ] || EMU2=build/bin/emu2
data=tests/data/heldout
model=models/emu2-tiny-digits
if [ ! -f "$data/labels.txt" ]; then
    skip "held-out accuracy" "no $data/labels.txt"
    finish; exit
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(wc -l <"$data/labels.txt")
files=(); for i in $(seq 0 $((n - 1))); do files+=("$data/$(printf '%03d' "$i").jpg"); done
start=$(date +%s%N)
if ! "$EMU2" describe -m "$model" --prompt '' --max-new-tokens 32 "${files[@]}" >"$tmp/engine" 2>"$tmp/err"; then
    fail "engine describes all $n held-out images" "$(tail -n 3 "$tmp/err")"
    finish; exit
fi
ms=$((($(date +%s%N) - start) / 1000000))
[ "$(wc -l <"$tmp/engine")" -eq "$n" ] && ok "engine describes all $n held-out images (${ms} ms)" \
    || fail "engine describes all $n held-out images" "got $(wc -l <"$tmp/engine") lines"
eng=$(paste -d'\t' "$data/labels.txt" "$tmp/engine" | awk -F'\t' '$1 == $2' | wc -l)
ref=$(paste -d'\t' "$data/labels.txt" "$data/torch_answers.txt" | awk -F'\t' '$1 == $2' | wc -l)
agree=$(paste -d'\t' "$data/torch_answers.txt" "$tmp/engine" | awk -F'\t' '$1 == $2' | wc -l)
echo "    accuracy: engine $eng/$n, PyTorch $ref/$n; same answer as PyTorch on $agree/$n"
diff=$((eng > ref ? eng - ref : ref - eng))
[ $((diff * 100)) -le "$n" ] && ok "engine accuracy within 1 point of PyTorch" \
    || fail "engine accuracy within 1 point of PyTorch" "engine $eng vs PyTorch $ref of $n"
[ $((agree * 100)) -ge $((n * 99)) ] && ok "engine answers as PyTorch on >= 99%" \
    || fail "engine answers as PyTorch on >= 99%" "$agree of $n"
finish
