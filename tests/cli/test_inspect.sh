#!/usr/bin/env bash
# test_inspect.sh: `emu2 inspect` on the small models, JSON output, exit codes, and broken folders.
. "$(dirname "$0")/lib.sh"
ROOT=${EMU2_ROOT:-.}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/emu2-inspect-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

expect_err "no argument is a usage error" "usage: emu2 inspect" "$EMU2" inspect
"$EMU2" inspect >/dev/null 2>&1; [ $? -eq 2 ] && ok "usage error exits 2" || fail "usage error exits 2"
expect_err "unknown option" "unexpected argument '--frobnicate'" "$EMU2" inspect --frobnicate "$ROOT"
expect_ok "--help" "$EMU2" inspect --help
expect_err "missing folder" "nonexistent-folder/config.json" "$EMU2" inspect "$TMP/nonexistent-folder"

models=0
for d in models/emu2-tiny-digits tests/models/rand-vis448 tests/models/rand-chat tests/models/gen-tiny; do
    if [ -f "$ROOT/$d/config.json" ] || [ -f "$ROOT/$d/multimodal_encoder/config.json" ]; then
        models=$((models + 1))
        out=$("$EMU2" inspect "$ROOT/$d" 2>&1); rc=$?
        if [ $rc -eq 0 ] && grep -q "result:      OK" <<<"$out" && grep -qE "total +[1-9][0-9,]*" <<<"$out"; then
            ok "inspect $d"
        else
            fail "inspect $d" "rc=$rc $(tail -n 3 <<<"$out")"
        fi
    else
        skip "inspect $d" "not generated"
    fi
done

# naming and format are reported; JSON agrees with the text report
if [ -f "$ROOT/tests/models/rand-chat/config.json" ]; then
    out=$("$EMU2" inspect "$ROOT/tests/models/rand-chat")
    grep -q "naming:      hf (fused qkv.bias" <<<"$out" && ok "rand-chat reported as HF naming" || fail "rand-chat naming" "$out"
    n_tensors=$(sed -nE 's/^tensors: +([0-9]+).*/\1/p' <<<"$out")
    listed=$("$EMU2" inspect --tensors "$ROOT/tests/models/rand-chat" | grep -cE '^  (visual|decoder|project_)[^ ]* +BF16 \[')
    k_view=$("$EMU2" inspect --tensors "$ROOT/tests/models/rand-chat" | grep -c 'visual.blocks.0.attn.k_bias .*(stored as model.visual.blocks.0.attn.qkv.bias)')
    [ -n "$n_tensors" ] && [ "$listed" = "$n_tensors" ] && [ "$k_view" = 1 ] && ok "--tensors lists every tensor" \
        || fail "--tensors" "listed=$listed of $n_tensors, k view lines=$k_view"
    json=$("$EMU2" inspect --json "$ROOT/tests/models/rand-chat"); rc=$?
    total_text=$(sed -nE 's/^  total +([0-9,]+).*/\1/p' <<<"$out" | tr -d ,)
    if [ $rc -eq 0 ] && grep -q '"ok": true' <<<"$json" && grep -q "\"total\": $total_text" <<<"$json" \
        && grep -q '"naming": "hf"' <<<"$json"; then
        ok "--json report"
    else
        fail "--json report" "rc=$rc total=$total_text $(head -c 400 <<<"$json")"
    fi
fi
if [ -f "$ROOT/tests/models/rand-vis448/config.json" ]; then
    out=$("$EMU2" inspect "$ROOT/tests/models/rand-vis448")
    grep -q "format:      pytorch, [0-9]* file(s), index pytorch_model.bin.index.json" <<<"$out" && grep -q "naming:      native" <<<"$out" \
        && ok "rand-vis448 reported as sharded .bin, native naming" || fail "rand-vis448 format" "$out"

    # the same weights with a config that disagrees: vocab changes embed_tokens and lm_head
    mkdir -p "$TMP/wrongvocab"
    for f in "$ROOT"/tests/models/rand-vis448/pytorch_model*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$TMP/wrongvocab/"; done
    sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 32300/' "$ROOT/tests/models/rand-vis448/config.json" >"$TMP/wrongvocab/config.json"
    out=$("$EMU2" inspect "$TMP/wrongvocab" 2>&1); rc=$?
    if [ $rc -eq 1 ] && grep -q "wrong shape: decoder.lm.model.embed_tokens.weight expected \[32300, " <<<"$out" \
        && grep -q "wrong shape: decoder.lm.lm_head.weight" <<<"$out" && grep -q "MISMATCH (2 problem(s))" <<<"$out"; then
        ok "mismatched config: exit 1, tensors named"
    else
        fail "mismatched config" "rc=$rc $(tail -n 4 <<<"$out")"
    fi
    json=$("$EMU2" inspect --json "$TMP/wrongvocab" 2>/dev/null); rc=$?
    [ $rc -eq 1 ] && grep -q '"kind": "shape"' <<<"$json" && grep -q '"ok": false' <<<"$json" \
        && ok "--json mismatch" || fail "--json mismatch" "rc=$rc"

    # a broken config is an error naming the key
    sed -E 's/"head_width": *[0-9]+/"head_width": 7/' "$ROOT/tests/models/rand-vis448/config.json" >"$TMP/wrongvocab/config.json"
    expect_err "bad config names the key" "vision_config.head_width" "$EMU2" inspect "$TMP/wrongvocab"
fi

# a truncated shard is a clear error naming the file
if [ -f "$ROOT/tests/models/rand-chat/model.safetensors" ]; then
    mkdir -p "$TMP/trunc"
    cp "$ROOT/tests/models/rand-chat/config.json" "$TMP/trunc/"
    head -c 100000 "$ROOT/tests/models/rand-chat/model.safetensors" >"$TMP/trunc/model.safetensors"
    expect_err "truncated safetensors" "model.safetensors: tensor '.*'.*past the data" "$EMU2" inspect "$TMP/trunc"
fi
[ $models -gt 0 ] || skip "small models" "none generated yet"
finish
