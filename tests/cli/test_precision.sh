#!/usr/bin/env bash
# tests/cli/test_precision.sh: `--precision` on the shipped tiny model converted to bf16 weights (the
# bf16 precision only changes linears with bf16 weights): a bad value is a clear error, --verbose says
# whether the bf16 dot products run, and greedy answers (the seed's examples and 24 held-out images)
# are the same as the f32 model's. Logits are checked in tests/unit/test_bf16_goldens.c.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tiny_model.sh"

expect_err "an unknown precision is refused" 'precision must be "f32" or "bf16", got "f16"' \
    "$EMU2" generate -m "$model" --precision f16 --prompt '[]' "$ex/blue_black_1_top_left.jpg"
expect_err "--precision needs a value" "needs a value" "$EMU2" describe -m "$model" --precision

if ! "$EMU2" convert "$model" "$tmp/bf16" --dtype bf16 >/dev/null 2>"$tmp/err"; then
    fail "convert the tiny model to bf16" "$(tail -n 3 "$tmp/err")"
    finish; exit
fi
bf=$tmp/bf16
"$EMU2" describe -m "$bf" --precision bf16 --verbose --num-beams 1 "${imgs[0]}" >/dev/null 2>"$tmp/v"
device=$(grep -m1 'device' "$tmp/v")
grep -q 'precision bf16' <<<"$device" && ok "--verbose names the precision" || fail "--verbose names the precision" "$device"
active=1
if grep -q 'precision bf16 unavailable' <<<"$device"; then
    active=0
    skip "bf16 dot products run" "${device#*device }"
fi

# the seed's examples: the f32 model's answers (the reference's, tests/cli/test_generate.sh) with bf16
# weights and the bf16 precision
answer() { # model precision case
    local m=$1 p=$2 c=$3
    case $c in
    label:*) "$EMU2" describe -m "$m" --precision "$p" --prompt '' "$ex/${c#label:}.jpg" ;;
    describe:*) "$EMU2" describe -m "$m" --precision "$p" "$ex/${c#describe:}.jpg" ;;
    fewshot) "$EMU2" generate -m "$m" --precision "$p" --prompt "$fewshot" "${imgs[@]}" ;;
    fewshot-greedy) "$EMU2" generate -m "$m" --precision "$p" --num-beams 1 --prompt "$fewshot" "${imgs[@]}" ;;
    esac
}
for c in label:red_white_3_bottom_left label:blue_black_1_top_left describe:blue_black_1_top_left fewshot \
    fewshot-greedy; do
    want=$(answer "$model" f32 "$c" 2>&1)
    got=$(answer "$bf" bf16 "$c" 2>&1)
    [ -n "$want" ] && [ "$got" = "$want" ] && ok "$c: bf16 precision gives the f32 model's answer" ||
        fail "$c: bf16 precision gives the f32 model's answer" "bf16 '$got', f32 '$want'"
done

# 24 held-out images, greedy captions, batched (8 images per forward pass: M = 8 x tokens)
held=$(ls tests/data/heldout/*.jpg 2>/dev/null | head -n 24)
if [ -z "$held" ]; then
    skip "held-out captions" "no tests/data/heldout/*.jpg"
else
    # shellcheck disable=SC2086
    "$EMU2" describe -m "$model" --num-beams 1 $held >"$tmp/f32" 2>&1
    # shellcheck disable=SC2086
    "$EMU2" describe -m "$bf" --precision bf16 --num-beams 1 $held >"$tmp/b16" 2>&1
    n=$(wc -l <"$tmp/f32")
    if [ "$n" -ge 24 ] && cmp -s "$tmp/f32" "$tmp/b16"; then
        ok "24 held-out greedy captions: bf16 precision = f32 model"
    else
        fail "24 held-out greedy captions: bf16 precision = f32 model" "$(diff "$tmp/f32" "$tmp/b16" | head -n 6)"
    fi
fi
[ $active = 1 ] || echo "  note: this CPU has no AVX512_BF16, so the comparisons above ran f32 both ways"
finish
