# tests/cli/test_convert.sh: `emu2 convert` on the shipped tiny model: usage errors, a real int4
# conversion (sharded, bf16) that `emu2 inspect` accepts and that still answers the seed's few-shot
# prompt, --dry-run/--list, and `generate --quant` (load-time quantization) giving the same answer.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tiny_model.sh"
want='[blue, black, 1, top left]'

expect_err "no folders is a usage error" "usage" "$EMU2" convert
expect_err "unknown --quant" "unknown quantization 'int5'" "$EMU2" convert "$model" "$tmp/x" --quant int5
expect_err "unknown --dtype" "bf16, f16 or f32" "$EMU2" convert "$model" "$tmp/x" --dtype f64
expect_err "--keep takes vision" "--keep takes 'vision'" "$EMU2" convert "$model" "$tmp/x" --keep text
expect_err "missing source" "no weights found|No such file" "$EMU2" convert "$tmp/none" "$tmp/x"
expect_err "into the source folder" "is the source folder" "$EMU2" convert "$model" "$model" --quant int8

out=$("$EMU2" convert "$model" "$tmp/q4" --quant int4 --dtype bf16 --shard-size 1M 2>"$tmp/err")
rc=$?
if [ $rc -eq 0 ] && grep -q "verified" <<<"$out"; then ok "convert --quant int4 --dtype bf16 writes and verifies"
else fail "convert --quant int4 --dtype bf16 writes and verifies" "rc $rc: $(tail -n 3 "$tmp/err")"; fi
shards=$(ls "$tmp/q4"/model-*-of-*.safetensors 2>/dev/null | wc -l)
[ "$shards" -gt 1 ] && [ -f "$tmp/q4/model.safetensors.index.json" ] && [ -f "$tmp/q4/config.json" ] &&
    [ -f "$tmp/q4/tokenizer.model" ] && ok "sharded ($shards files) with index, config and tokenizer" ||
    fail "sharded with index, config and tokenizer" "$(ls "$tmp/q4")"
grep -q '"emu2_quant": "int4"' "$tmp/q4/model.safetensors.index.json" && ok "the index names the format" ||
    fail "the index names the format"
[ -s "$tmp/err" ] && fail "no progress bar when stderr is not a terminal" "$(head -c 200 "$tmp/err")" ||
    ok "no progress bar when stderr is not a terminal"
expect_ok "emu2 inspect accepts the converted folder" "$EMU2" inspect "$tmp/q4"
total_of() { "$EMU2" inspect "$1" 2>/dev/null | awk '$1 == "total" { print $2 }'; }
src_total=$(total_of "$model"); q4_total=$(total_of "$tmp/q4")
[ -n "$src_total" ] && [ "$q4_total" = "$src_total" ] && ok "inspect counts the int4 folder's parameters as the source's ($src_total)" ||
    fail "inspect counts the int4 folder's parameters as the source's" "source '$src_total', int4 '$q4_total'"
got=$("$EMU2" generate -m "$tmp/q4" --threads 2 --prompt "$fewshot" "${imgs[@]}" 2>&1)
[ "$got" = "$want" ] && ok "converted int4 model answers the seed prompt" || fail "converted int4 model answers the seed prompt" "$got"
for q in int8 int4; do
    got=$("$EMU2" generate -m "$model" --quant $q --threads 2 --prompt "$fewshot" "${imgs[@]}" 2>&1)
    [ "$got" = "$want" ] && ok "generate --quant $q answers the seed prompt" || fail "generate --quant $q answers the seed prompt" "$got"
done
expect_err "generate --quant rejects unknown formats" "unknown quantization" "$EMU2" generate -m "$model" --quant q3 \
    --prompt '[]' "$ex/blue_black_1_top_left.jpg"

list=$("$EMU2" convert --dry-run --list --quant int8 "$model" 2>&1)
grep -q '^decoder.lm.model.layers.0.mlp.down_proj.qweight I8 \[128, 384\]' <<<"$list" &&
    grep -q '^decoder.lm.model.layers.0.mlp.down_proj.scales F32 \[128\]' <<<"$list" &&
    grep -q '^decoder.lm.lm_head.qweight I8 \[656, 128\]' <<<"$list" &&
    grep -q '^decoder.lm.model.embed_tokens.weight F32 \[656, 128\]' <<<"$list" && ok "--dry-run --list names the int8 tensors" ||
    fail "--dry-run --list names the int8 tensors" "$(head -n 5 <<<"$list")"
"$EMU2" convert --dry-run --quant int8 "$model" "$tmp/dry" >/dev/null 2>&1
[ $? -eq 0 ] && [ ! -e "$tmp/dry" ] && ok "--dry-run writes nothing" || fail "--dry-run writes nothing"
expect_err "an output folder holding weights is refused" "already holds weight files" "$EMU2" convert "$model" "$tmp/q4"
finish
