# Weight-only quantization on the 500 held-out images (tests/data/heldout): with the LLM linears in
# int8 and in int4 (load-time quantization, docs/QUANT.md), the tiny model's caption accuracy must
# stay within 1 point of the f32 PyTorch reference's (which heldout_accuracy.sh holds the float
# engine to). About 10-20 s per pass.
. tests/cli/lib.sh
EMU2=${EMU2_BIN:-build/bin/emu2}
[ -x "$EMU2" ] || EMU2=build/bin/emu2
data=tests/data/heldout
model=models/emu2-tiny-digits
if [ ! -f "$data/labels.txt" ]; then
    skip "quantized held-out accuracy" "no $data/labels.txt"
    finish; exit
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=$(wc -l <"$data/labels.txt")
files=(); for i in $(seq 0 $((n - 1))); do files+=("$data/$(printf '%03d' "$i").jpg"); done
ref=$(paste -d'\t' "$data/labels.txt" "$data/torch_answers.txt" | awk -F'\t' '$1 == $2' | wc -l)
for q in int8 int4; do
    start=$(date +%s%N)
    if ! "$EMU2" describe -m "$model" --quant $q --prompt '' --max-new-tokens 32 "${files[@]}" >"$tmp/$q" 2>"$tmp/err"; then
        fail "$q describes all $n held-out images" "$(tail -n 3 "$tmp/err")"
        continue
    fi
    ms=$((($(date +%s%N) - start) / 1000000))
    got=$(paste -d'\t' "$data/labels.txt" "$tmp/$q" | awk -F'\t' '$1 == $2' | wc -l)
    echo "    $q: $got/$n exact captions (f32 PyTorch reference: $ref/$n), ${ms} ms"
    diff=$((got > ref ? got - ref : ref - got))
    [ "$(wc -l <"$tmp/$q")" -eq "$n" ] && [ $((diff * 100)) -le "$n" ] && ok "$q accuracy within 1 point of f32" ||
        fail "$q accuracy within 1 point of f32" "$q $got vs f32 $ref of $n"
done
finish
