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
finish
