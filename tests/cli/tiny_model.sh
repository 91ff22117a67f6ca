# tests/cli/tiny_model.sh: what the CLI tests on the shipped tiny model share. Source it after lib.sh:
# sets model, ex (its example images), tmp (removed on exit), and the seed's few-shot prompt (fewshot)
# with its four images in order (imgs).
model=models/emu2-tiny-digits
ex=$model/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fewshot='[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]'
imgs=("$ex/red_white_3_bottom_left.jpg" "$ex/yellow_white_2_top_right.jpg" "$ex/green_black_4_bottom_right.jpg"
      "$ex/blue_black_1_top_left.jpg")
