#!/usr/bin/env bash
# tests/cli/test_preprocess.sh: `emu2 preprocess` end to end: tensor size and bytes against the
# torchvision golden, the --png output, and clear errors for bad input.
. "$(dirname "$0")/lib.sh"
data=tests/data/image
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# a committed input at a small size, with the resized PNG
if "$EMU2" preprocess --size 64 "$data/inputs/jpeg420_101x67.jpg" -o "$tmp/a.f32" --png "$tmp/a.png" 2>"$tmp/err"; then
    sz=$(stat -c %s "$tmp/a.f32")
    [ "$sz" -eq $((3 * 64 * 64 * 4)) ] && ok "size 64 tensor has 3*64*64 floats" || fail "tensor size" "$sz bytes"
    # our PNG and Pillow's expected PNG must give the same tensor (same pixels)
    if "$EMU2" preprocess --size 64 "$data/expected/jpeg420_101x67_64x64.png" -o "$tmp/b.f32" &&
        "$EMU2" preprocess --size 64 "$tmp/a.png" -o "$tmp/c.f32" &&
        cmp -s "$tmp/a.f32" "$tmp/b.f32" && cmp -s "$tmp/a.f32" "$tmp/c.f32"; then
        ok "--png pixels equal Pillow's resize"
    else
        fail "--png pixels equal Pillow's resize"
    fi
else
    fail "preprocess a committed JPEG" "$(cat "$tmp/err")"
fi

# the seed image whose normalized rows torchvision computed: row 0 of the R plane, byte-exact
seed=$(sed -n 's/^seed://p' "$data/seed_rows.txt")
model="$SHARED/fixtures/emu2-configs/Emu2"
if [ -f "$SHARED/fixtures/seed-images/$seed" ] && [ -f "$model/config.json" ]; then
    if "$EMU2" preprocess -m "$model" "$SHARED/fixtures/seed-images/$seed" -o "$tmp/s.f32" 2>"$tmp/err"; then
        [ "$(stat -c %s "$tmp/s.f32")" -eq $((3 * 448 * 448 * 4)) ] && ok "-m reads image_size 448" || fail "-m reads image_size 448"
        if cmp -s <(head -c 1792 "$tmp/s.f32") <(head -c 1792 "$data/seed_rows.f32"); then
            ok "seed tensor row equals torchvision's"
        else
            fail "seed tensor row equals torchvision's"
        fi
    else
        fail "preprocess a seed image" "$(cat "$tmp/err")"
    fi
else
    skip "seed image tensor" "no $SHARED/fixtures/seed-images/$seed or Emu2 config"
fi

expect_err "missing image" "No such file" "$EMU2" preprocess --size 64 "$tmp/nope.jpg" -o "$tmp/x.f32"
expect_err "truncated JPEG" "truncated" "$EMU2" preprocess --size 64 "$data/inputs/bad_jpeg_truncated.jpg" -o "$tmp/x.f32"
expect_err "truncated PNG" "truncated" "$EMU2" preprocess --size 64 "$data/inputs/bad_png_truncated.png" -o "$tmp/x.f32"
expect_err "huge header" "limit" "$EMU2" preprocess --size 64 "$data/inputs/bad_png_huge_header.png" -o "$tmp/x.f32"
expect_err "not an image" "JPEG and PNG" "$EMU2" preprocess --size 64 "$data/inputs/bad_not_an_image.bin" -o "$tmp/x.f32"
expect_err "model dir without config" "config.json" "$EMU2" preprocess -m "$tmp" "$data/inputs/rgb8_2x3.png" -o "$tmp/x.f32"
expect_err "bad --size" "--size" "$EMU2" preprocess --size 0 "$data/inputs/rgb8_2x3.png" -o "$tmp/x.f32"
expect_err "no output" "usage" "$EMU2" preprocess --size 8 "$data/inputs/rgb8_2x3.png"
expect_err "unwritable output" "x.f32" "$EMU2" preprocess --size 8 "$data/inputs/rgb8_2x3.png" -o /nonexistent-dir/x.f32
finish
