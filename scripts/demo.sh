#!/usr/bin/env bash
# scripts/demo.sh BUILD_DIR: what the engine can show today, on the shipped tiny model.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
emu2="$build/bin/emu2"
model=models/emu2-tiny-digits
img=$model/examples/blue_black_1_top_left.jpg
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say emu2 inspect $model
"$emu2" inspect "$model"

prompt='[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]'
say emu2 tokenize -m $model "$prompt"
"$emu2" tokenize -m "$model" --json "$prompt"

out=$(mktemp --suffix=.f32)
trap 'rm -f "$out"' EXIT
say emu2 preprocess -m $model $img -o "$out"
"$emu2" preprocess -m "$model" "$img" -o "$out"
echo "wrote $(stat -c %s "$out") bytes (3 x S x S float32, CLIP-normalized) to $out"
