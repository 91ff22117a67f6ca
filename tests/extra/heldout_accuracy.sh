# The engine on 500 held-out synthetic images (tests/data/heldout, made by
# tests/reference/gen_heldout.py): caption accuracy against the true labels must equal the PyTorch
# reference's within 1 point, and the engine must give the reference's answer on >= 99% of images.
. tests/cli/lib.sh
. tests/extra/lib/heldout.sh
heldout_setup "held-out accuracy" || exit 0
start=$(date +%s%N)
if ! "$EMU2" describe -m "$model" --prompt '' --max-new-tokens 32 "${files[@]}" >"$tmp/engine" 2>"$tmp/err"; then
    fail "engine describes all $n held-out images" "$(tail -n 3 "$tmp/err")"
    finish; exit
fi
ms=$((($(date +%s%N) - start) / 1000000))
[ "$(wc -l <"$tmp/engine")" -eq "$n" ] && ok "engine describes all $n held-out images (${ms} ms)" \
    || fail "engine describes all $n held-out images" "got $(wc -l <"$tmp/engine") lines"
eng=$(same_lines "$data/labels.txt" "$tmp/engine")
ref=$(same_lines "$data/labels.txt" "$data/torch_answers.txt")
agree=$(same_lines "$data/torch_answers.txt" "$tmp/engine")
echo "    accuracy: engine $eng/$n, PyTorch $ref/$n; same answer as PyTorch on $agree/$n"
within_one_point "$eng" "$ref" "$n" && ok "engine accuracy within 1 point of PyTorch" \
    || fail "engine accuracy within 1 point of PyTorch" "engine $eng vs PyTorch $ref of $n"
[ $((agree * 100)) -ge $((n * 99)) ] && ok "engine answers as PyTorch on >= 99%" \
    || fail "engine answers as PyTorch on >= 99%" "$agree of $n"
finish
