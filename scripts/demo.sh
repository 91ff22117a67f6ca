#!/usr/bin/env bash
# scripts/demo.sh BUILD_DIR: the seed's two examples on the shipped tiny model, plus the input tools.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
emu2="$build/bin/emu2"
model=models/emu2-tiny-digits
ex=$model/examples
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say emu2 describe -m $model $ex/blue_black_1_top_left.jpg
"$emu2" describe -m "$model" "$ex/blue_black_1_top_left.jpg"

prompt='[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]'
imgs=("$ex/red_white_3_bottom_left.jpg" "$ex/yellow_white_2_top_right.jpg" "$ex/green_black_4_bottom_right.jpg"
      "$ex/blue_black_1_top_left.jpg")
say emu2 generate -m $model --prompt "'$prompt'" "${imgs[@]}"
"$emu2" generate -m "$model" --prompt "$prompt" "${imgs[@]}"

say emu2 inspect $model
"$emu2" inspect "$model"

say emu2 tokenize -m $model --json "'[]Describe the image in details:'"
"$emu2" tokenize -m "$model" --json '[]Describe the image in details:'
