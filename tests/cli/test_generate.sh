#!/usr/bin/env bash
# tests/cli/test_generate.sh: `emu2 describe` and `emu2 generate` on the shipped tiny model: the
# seed's examples give the reference's (and, where it is right, the true) answers, options reach the
# engine, bad input is a clear error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tiny_model.sh"

# The seed's examples. The engine must give the PyTorch reference's answer (tests/data/heldout/seed_answers.tsv,
# made by tests/reference/gen_heldout.py from the same model files); where the reference gives the truth,
# the engine must too. A reference answer that is not the truth is reported as a skip: it measures the
# shipped model's training, not the engine.
answers=tests/data/heldout/seed_answers.tsv
engine_answer() { # case -> the engine's answer
    case $1 in
    label:*) "$EMU2" describe -m "$model" --prompt '' "$ex/${1#label:}.jpg" ;;
    describe:*) "$EMU2" describe -m "$model" "$ex/${1#describe:}.jpg" ;;
    fewshot) "$EMU2" generate -m "$model" --prompt "$fewshot" "${imgs[@]}" ;;
    fewshot-greedy) "$EMU2" generate -m "$model" --num-beams 1 --prompt "$fewshot" "${imgs[@]}" ;;
    esac
}
if [ -f "$answers" ]; then
    while IFS= read -r line; do
        case $line in '#'*|'') continue ;; esac
        # cut, not read: read would merge the tabs around an empty answer
        name=$(cut -f1 <<<"$line"); ref=$(cut -f2 <<<"$line"); truth=$(cut -f3 <<<"$line")
        got=$(engine_answer "$name" 2>"$tmp/err")
        [ "$got" = "$ref" ] && ok "$name: same answer as the PyTorch reference" \
            || fail "$name: same answer as the PyTorch reference" "engine '$got', reference '$ref' $(cat "$tmp/err")"
        if [ "$ref" = "$truth" ]; then
            [ "$got" = "$truth" ] && ok "$name: answers '$truth'" || fail "$name: answers '$truth'" "got '$got'"
        else
            skip "$name: answers '$truth'" "the reference model itself answers '$ref' (under-trained model)"
        fi
    done <"$answers"
else
    skip "seed examples" "no $answers (tests/reference/gen_heldout.py)"
fi

# one line per image, JSON well-formed and carrying the image name
"$EMU2" describe -m "$model" --json "${imgs[0]}" "${imgs[3]}" >"$tmp/j" 2>"$tmp/err"
if [ "$(wc -l <"$tmp/j")" -eq 2 ] && grep -q '"image":".*red_white_3_bottom_left.jpg"' "$tmp/j" &&
    grep -q '"text":"' "$tmp/j"; then ok "describe --json: one object per image"; else fail "describe --json" "$(cat "$tmp/j" "$tmp/err")"; fi

# streaming prints the same text
g=$("$EMU2" generate -m "$model" --num-beams 1 --prompt "$fewshot" "${imgs[@]}" 2>/dev/null)
s=$("$EMU2" generate -m "$model" --num-beams 1 --stream --prompt "$fewshot" "${imgs[@]}" 2>"$tmp/stream")
[ "$g" = "$s" ] && [ -n "$g" ] && ok "--stream gives the same text" || fail "--stream gives the same text" "'$g' vs '$s'"
grep -q "top" "$tmp/stream" && ok "--stream prints pieces on stderr" || fail "--stream prints pieces on stderr"
d=$("$EMU2" describe -m "$model" --num-beams 1 "${imgs[3]}" "${imgs[0]}" 2>/dev/null)
ds=$("$EMU2" describe -m "$model" --num-beams 1 --stream "${imgs[3]}" "${imgs[0]}" 2>"$tmp/dstream")
[ "$d" = "$ds" ] && [ "$(wc -l <<<"$d")" -eq 2 ] && ok "describe --stream gives the same lines" \
    || fail "describe --stream gives the same lines" "'$d' vs '$ds'"
[ "$(tr -d '\n' <"$tmp/dstream")" = "$(tr -d '\n' <<<"$d")" ] && ok "describe --stream pieces add up to the text" \
    || fail "describe --stream pieces add up to the text" "$(cat "$tmp/dstream")"
o=$("$EMU2" generate -m "$model" --num-beams 1 --max-new-tokens 2 --prompt "$fewshot" "${imgs[@]}" 2>&1)
[ ${#o} -lt ${#g} ] && ok "--max-new-tokens 2 cuts the answer" || fail "--max-new-tokens 2 cuts the answer" "'$o'"
a=$("$EMU2" generate -m "$model" --sample --num-beams 1 --seed 7 --prompt "$fewshot" "${imgs[@]}" 2>&1)
b=$("$EMU2" generate -m "$model" --sample --num-beams 1 --seed 7 --prompt "$fewshot" "${imgs[@]}" 2>&1)
[ "$a" = "$b" ] && ok "sampling with a seed is repeatable" || fail "sampling with a seed is repeatable" "'$a' vs '$b'"
t=$("$EMU2" describe -m "$model" --threads 1 "$ex/blue_black_1_top_left.jpg" 2>&1)
u=$("$EMU2" describe -m "$model" --threads 2 "$ex/blue_black_1_top_left.jpg" 2>&1)
[ "$t" = "$u" ] && ok "--threads 1 and 2 agree" || fail "--threads 1 and 2 agree" "'$t' vs '$u'"

# errors
expect_err "placeholder/image count mismatch" "2 image placeholders but 1 image" \
    "$EMU2" generate -m "$model" --prompt '[][]' "${imgs[0]}"
expect_err "more images than placeholders" "1 image placeholder but 2 images" \
    "$EMU2" generate -m "$model" --prompt '[]x' "${imgs[0]}" "${imgs[1]}"
head -c 5000 "${imgs[0]}" >"$tmp/trunc.jpg"
expect_err "truncated JPEG" "trunc.jpg.*(truncat|corrupt|premature|incomplete)" "$EMU2" describe -m "$model" "$tmp/trunc.jpg"
printf 'not an image' >"$tmp/x.jpg"
expect_err "not an image" "not recognized" "$EMU2" describe -m "$model" "$tmp/x.jpg"
expect_err "missing image file" "nope.jpg: No such file" "$EMU2" describe -m "$model" "$tmp/nope.jpg"
expect_err "missing model folder" "/nonexistent" "$EMU2" describe -m /nonexistent "${imgs[0]}"
mkdir "$tmp/noweights" && cp "$model"/*.json "$model/tokenizer.model" "$tmp/noweights/"
expect_err "model without weights" "noweights" "$EMU2" describe -m "$tmp/noweights" "${imgs[0]}"
expect_err "empty prompt, no images" "empty" "$EMU2" generate -m "$model" --prompt ''
long=$(printf '[]%.0s' $(seq 40))
imgs40=(); for i in $(seq 40); do imgs40+=("${imgs[0]}"); done
expect_err "prompt longer than the context" "context" "$EMU2" generate -m "$model" --prompt "$long" "${imgs40[@]}"
expect_err "bad option value" "num-beams needs an integer" "$EMU2" generate -m "$model" --num-beams 0 --prompt x
expect_err "unknown option" "unknown option" "$EMU2" describe -m "$model" --frobnicate "${imgs[0]}"
expect_err "generate without --prompt" "prompt is required" "$EMU2" generate -m "$model" "${imgs[0]}"
expect_err "unknown device" "unknown device" "$EMU2" describe -m "$model" --device tpu "${imgs[0]}"

# describe runs images in batches (emu2_generate_batch): any batch size gives the one-by-one lines, in order,
# and a bad image fails its own line only
held=(); for i in 000 001 002 003 004 005 006; do held+=("tests/data/heldout/$i.jpg"); done
"$EMU2" describe -m "$model" --prompt '' --batch 1 "${held[@]}" >"$tmp/b1" 2>"$tmp/err"
"$EMU2" describe -m "$model" --prompt '' --batch 3 "${held[@]}" >"$tmp/b3" 2>>"$tmp/err"
"$EMU2" describe -m "$model" --batch 4 "${held[@]:0:2}" "${imgs[3]}" >"$tmp/d4" 2>>"$tmp/err"
if [ "$(wc -l <"$tmp/b1")" -eq 7 ] && cmp -s "$tmp/b1" "$tmp/b3"; then ok "describe --batch 3 = --batch 1 (7 images)"
else fail "describe --batch 3 = --batch 1 (7 images)" "$(paste "$tmp/b1" "$tmp/b3" | head -3) $(cat "$tmp/err")"; fi
[ "$(sed -n 3p "$tmp/d4")" = "A blue circle with a black 1 in the top left corner." ] \
    && ok "describe --batch with the default question" || fail "describe --batch with the default question" "$(cat "$tmp/d4")"
"$EMU2" describe -m "$model" --prompt '' --batch 4 "${held[0]}" "$tmp/x.jpg" "${held[1]}" >"$tmp/bx" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 1 ] && [ "$(cat "$tmp/bx")" = "$(sed -n 1,2p "$tmp/b1")" ] && grep -q "x.jpg" "$tmp/err"; then
    ok "a bad image in a batch fails its own line only"
else fail "a bad image in a batch fails its own line only" "rc $rc: $(cat "$tmp/bx" "$tmp/err")"; fi
expect_err "bad --batch" "batch" "$EMU2" describe -m "$model" --batch 0 "${imgs[0]}"

# --verbose names the device (and why not the GPU); --random-weights needs no checkpoint
"$EMU2" describe -m "$model" --verbose --prompt '' "${imgs[0]}" >/dev/null 2>"$tmp/err"
grep -q "device cpu" "$tmp/err" && ok "--verbose names the device" || fail "--verbose names the device" "$(cat "$tmp/err")"
"$EMU2" describe -m "$tmp/noweights" --random-weights --num-beams 1 --max-new-tokens 4 "${imgs[0]}" >/dev/null 2>"$tmp/err" \
    && ok "--random-weights on a config-only folder" || fail "--random-weights on a config-only folder" "$(cat "$tmp/err")"
finish
