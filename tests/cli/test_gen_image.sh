#!/usr/bin/env bash
# tests/cli/test_gen_image.sh: `emu2 gen-image` end to end on tests/models/gen-tiny: PNG files of the
# requested sizes that the project's own decoder reads back, autoencoding mode, and clear errors for
# bad options and for a model without a generator.
. "$(dirname "$0")/lib.sh"
model=tests/models/gen-tiny
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# width x height from a PNG's IHDR (bytes 16..23, big endian)
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'; }

if [ ! -f "$model/model_index.json" ]; then
    skip "gen-image" "no $model"
    finish; exit
fi

if "$EMU2" gen-image -m "$model" --prompt "a red circle with the white digit 3" --steps 3 -o "$tmp/a.png" 2>"$tmp/err"; then
    [ "$(png_size "$tmp/a.png")" = 64x64 ] && ok "default size is 64x64" || fail "default size" "$(png_size "$tmp/a.png")"
    # the project's decoder reads it back (preprocess decodes, converts and resizes)
    expect_ok "the PNG decodes" "$EMU2" preprocess --size 32 "$tmp/a.png" -o "$tmp/a.f32"
else
    fail "gen-image with a prompt" "$(cat "$tmp/err")"
fi

if "$EMU2" gen-image -m "$model" -p "[red, white, 3, bottom left]" --width 48 --height 32 --steps 2 --seed 5 \
    --guidance 2.5 --threads 2 -o "$tmp/b.png" 2>"$tmp/err"; then
    [ "$(png_size "$tmp/b.png")" = 48x32 ] && ok "--width 48 --height 32" || fail "requested size" "$(png_size "$tmp/b.png")"
else
    fail "gen-image with a size" "$(cat "$tmp/err")"
fi

"$EMU2" gen-image -m "$model" -p "x" --steps 2 --seed 9 -o "$tmp/c1.png" 2>/dev/null
"$EMU2" gen-image -m "$model" -p "x" --steps 2 --seed 9 -o "$tmp/c2.png" 2>/dev/null
cmp -s "$tmp/c1.png" "$tmp/c2.png" && ok "same seed, same file" || fail "same seed, same file"

img=tests/reference/goldens/gen/input_448.png
if "$EMU2" gen-image -m "$model" "$img" --steps 2 --vae-tiling --width 80 --height 72 -o "$tmp/d.png" 2>"$tmp/err"; then
    [ "$(png_size "$tmp/d.png")" = 80x72 ] && ok "autoencoding one image (tiled decode)" || fail "autoencoding size"
else
    fail "autoencoding one image" "$(cat "$tmp/err")"
fi
expect_ok "image in the prompt" "$EMU2" gen-image -m "$model" -p "[]a blue circle" "$img" --steps 2 -o "$tmp/e.png"

expect_err "width not a multiple of 8" "multiple of 8" "$EMU2" gen-image -m "$model" -p a --width 60 -o "$tmp/x.png"
expect_err "zero steps" "steps" "$EMU2" gen-image -m "$model" -p a --steps 0 -o "$tmp/x.png"
expect_err "negative guidance" "guidance" "$EMU2" gen-image -m "$model" -p a --guidance -1 -o "$tmp/x.png"
expect_err "no output" "-o" "$EMU2" gen-image -m "$model" -p a
expect_err "placeholder without image" "placeholder" "$EMU2" gen-image -m "$model" -p "[]" -o "$tmp/x.png"
expect_err "two images to autoencode" "exactly one" "$EMU2" gen-image -m "$model" "$img" "$img" -o "$tmp/x.png"
if [ -f models/emu2-tiny-digits/config.json ]; then
    expect_err "a model without a generator" "no image generator" \
        "$EMU2" gen-image -m models/emu2-tiny-digits -p a -o "$tmp/x.png"
else
    skip "a model without a generator" "no models/emu2-tiny-digits"
fi
[ ! -e "$tmp/x.png" ] && ok "no file written on errors" || fail "no file written on errors"

# broken model folders are load errors naming the problem, never crashes
cp -r "$model" "$tmp/m1"
sed -i 's/"CrossAttnDownBlock2D"/"SimpleCrossAttnDownBlock2D"/' "$tmp/m1/unet/config.json"
expect_err "unknown UNet block type" "down block" "$EMU2" gen-image -m "$tmp/m1" -p a -o "$tmp/x.png"
cp -r "$model" "$tmp/m2"
head -c 100000 "$model/vae/diffusion_pytorch_model.bf16.safetensors" >"$tmp/m2/vae/diffusion_pytorch_model.bf16.safetensors"
expect_err "truncated VAE weights" "vae" "$EMU2" gen-image -m "$tmp/m2" -p a -o "$tmp/x.png"
cp -r "$model" "$tmp/m3"
sed -i 's/"timestep_spacing": "leading"/"timestep_spacing": "karras"/' "$tmp/m3/scheduler/scheduler_config.json"
expect_err "unknown timestep spacing" "timestep_spacing" "$EMU2" gen-image -m "$tmp/m3" -p a -o "$tmp/x.png"
finish
