#!/usr/bin/env bash
# test_tokenize.sh: `emu2 tokenize`. Expected ids come from transformers 4.31's slow LlamaTokenizer
# (the same source as tests/data/tokenizer/goldens.json).
. "$(dirname "$0")/lib.sh"
LLAMA="$SHARED/fixtures/llama-tokenizer"
TINY="models/emu2-tiny-digits"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# expect_out NAME EXPECTED CMD...: exit 0 and stdout equal to EXPECTED
expect_out() {
    local n=$1 want=$2; shift 2; local got
    if ! got=$("$@" 2>"$tmp/err"); then fail "$n" "exit non-zero: $(head -c 300 "$tmp/err")"; return; fi
    if [ "$got" = "$want" ]; then ok "$n"; else fail "$n" "want [$want] got [$(printf '%s' "$got" | head -c 300)]"; fi
}

if [ -f "$LLAMA/tokenizer.model" ]; then
    expect_out "plain prompt, one id per line" "$(printf '1\n20355\n915\n278\n1967\n297\n4902\n29901')" \
        "$EMU2" tokenize -m "$LLAMA" "Describe the image in details:"
    expect_out "json output" "[1,20355,915,278,1967,297,4902,29901]" \
        "$EMU2" tokenize -m "$LLAMA" --json "Describe the image in details:"
    expect_out "no bos" "[20355,915,278,1967,297,4902,29901]" \
        "$EMU2" tokenize -m "$LLAMA" --json --no-bos "Describe the image in details:"
    expect_out "placeholder with --n-query 2" "[1,32001,32003,32003,32002,20355,915,278,1967,297,4902,29901]" \
        "$EMU2" tokenize -m "$LLAMA" --json --n-query 2 "[]Describe the image in details:"
    expect_out "long placeholder, spaces stripped" "[1,32001,32003,32002,20355,915,32001,32003,32002]" \
        "$EMU2" tokenize -m "$LLAMA" --json --n-query 1 " [<IMG_PLH>] Describe [] "
    n=$("$EMU2" tokenize -m "$LLAMA" "[<IMG_PLH>]Describe the image in details:" | wc -l)
    [ "$n" -eq 74 ] && ok "default n_query 64: 1 + 66 + 7 ids" || fail "default n_query 64" "got $n ids"
    expect_out "no placeholders keeps [] as text" "[1,5159,4002,29581]" \
        "$EMU2" tokenize -m "$LLAMA" --json --no-placeholders "[]Describe"
    expect_out "chat tokens" "[1,32272,584,7251,32273,584]" \
        "$EMU2" tokenize -m "$LLAMA" --json --model-version chat "[USER]: hi [ASSISTANT]:"
    expect_out "base has no [USER] token" "[1,518,11889,29962]" \
        "$EMU2" tokenize -m "$LLAMA" --json "[USER]"
    expect_out "stdin, byte for byte" "[1,22172,29871,13]" \
        bash -c "printf 'hello \n' | \"$EMU2\" tokenize -m \"$LLAMA\" --json -"
    expect_out "empty prompt" "[1]" "$EMU2" tokenize -m "$LLAMA" --json ""
    expect_err "invalid UTF-8 is refused" "UTF-8" bash -c "printf 'a\\xffb' | \"$EMU2\" tokenize -m \"$LLAMA\" -"
    expect_err "bad model version" "neither" "$EMU2" tokenize -m "$LLAMA" --model-version large x
else
    skip "llama tokenizer cases" "no $LLAMA/tokenizer.model"
fi

if [ -f "$TINY/tokenizer.model" ]; then
    expect_out "tiny model folder (added_tokens.json)" "[1,343,349,335,350,263,270,351,365]" \
        "$EMU2" tokenize -m "$TINY" --json "hello world"
else
    skip "tiny model case" "no $TINY/tokenizer.model"
fi

expect_err "missing -m is a usage error" "required" "$EMU2" tokenize "text"
"$EMU2" tokenize "text" >/dev/null 2>&1; [ $? -eq 2 ] && ok "usage error exits 2" || fail "usage error exits 2"
expect_err "missing folder" "tokenizer.model" "$EMU2" tokenize -m "$tmp/nowhere" x
mkdir -p "$tmp/bad" && printf 'not a model' >"$tmp/bad/tokenizer.model"
expect_err "corrupt tokenizer.model" "SentencePiece" "$EMU2" tokenize -m "$tmp/bad" x
expect_err "bad --n-query" "n-query" "$EMU2" tokenize -m "$tmp/bad" --n-query -3 x
expect_ok "help" "$EMU2" tokenize --help
finish
