# Weight-only quantization on the 500 held-out images (tests/data/heldout): with the LLM linears in
# int8 and in int4 (load-time quantization, docs/QUANT.md), the tiny model's caption accuracy must
# stay within 1 point of the f32 PyTorch reference's (which heldout_accuracy.sh holds the float
# engine to). About 10-20 s per pass.
. tests/cli/lib.sh
. tests/extra/lib/heldout.sh
heldout_setup "quantized held-out accuracy" || exit 0
ref=$(same_lines "$data/labels.txt" "$data/torch_answers.txt")
for q in int8 int4; do
    start=$(date +%s%N)
    if ! "$EMU2" describe -m "$model" --quant $q --prompt '' --max-new-tokens 32 "${files[@]}" >"$tmp/$q" 2>"$tmp/err"; then
        fail "$q describes all $n held-out images" "$(tail -n 3 "$tmp/err")"
        continue
    fi
    ms=$((($(date +%s%N) - start) / 1000000))
    got=$(same_lines "$data/labels.txt" "$tmp/$q")
    echo "    $q: $got/$n exact captions (f32 PyTorch reference: $ref/$n), ${ms} ms"
    [ "$(wc -l <"$tmp/$q")" -eq "$n" ] && within_one_point "$got" "$ref" "$n" && ok "$q accuracy within 1 point of f32" ||
        fail "$q accuracy within 1 point of f32" "$q $got vs f32 $ref of $n"
done
finish
