#!/usr/bin/env bash
# tests/gpu/carry.sh: run HERE (a Debian 12 machine with apt) before sending the repository to a GPU
# machine. The GPU machine has CUDA but not the Debian libraries the engine links (it cannot reach
# a package registry), so this downloads them with `apt-get download` and unpacks them with
# `dpkg -x` into .gpu-deps/root (git-ignored). tests/gpu/run.sh builds against that folder. It also
# copies the full-size published configs the GPU benchmark and tests need into
# .gpu-deps/shared/fixtures/emu2-configs (run.sh points EMU2_SHARED there).
#
#   tests/gpu/carry.sh            then, with the device tool:  run tests/gpu/run.sh, carry [".gpu-deps"]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEPS=$ROOT/.gpu-deps
SHARED=${EMU2_SHARED:-$ROOT/../shared}
PKGS=(libturbojpeg0 libturbojpeg0-dev libpng16-16 libpng-dev zlib1g-dev
      libsentencepiece0 libsentencepiece-dev libjansson4 libjansson-dev)

# the .deb files stay outside the repository (only what is unpacked travels)
DEBS=$(mktemp -d /tmp/emu2-gpu-debs.XXXXXX)
trap 'rm -rf "$DEBS"' EXIT
rm -rf "$DEPS/root" "$DEPS/debs"
mkdir -p "$DEPS/root"
cd "$DEBS"
if ! apt-get download "${PKGS[@]}" >/dev/null 2>&1; then
    echo "carry: apt-get download failed; refreshing the package lists (apt-get update)" >&2
    apt-get update -qq
    apt-get download "${PKGS[@]}" >/dev/null
fi
n_debs=0
for deb in ./*.deb; do
    dpkg -x "$deb" "$DEPS/root"
    n_debs=$((n_debs + 1))
done
rm -rf "$DEPS/root/usr/share" && find "$DEPS/root" -name '*.a' -delete # docs and static archives: not needed
# the -dev packages' .so links point at absolute /usr/lib paths: make them relative to the folder
libdir=$DEPS/root/usr/lib/x86_64-linux-gnu
for link in "$libdir"/*.so; do
    [ -L "$link" ] || continue
    target=$(readlink "$link")
    case "$target" in /*) ln -sf "$(basename "$target")" "$link" ;; esac
done
if [ -d "$SHARED/fixtures/emu2-configs" ]; then
    rm -rf "$DEPS/shared"
    mkdir -p "$DEPS/shared/fixtures"
    cp -r "$SHARED/fixtures/emu2-configs" "$DEPS/shared/fixtures/"
    chmod -R u+w "$DEPS/shared"
else
    echo "carry: $SHARED/fixtures/emu2-configs is absent: the GPU run will skip the full-size benchmarks" >&2
fi
echo "carry: $(du -sh "$DEPS" | cut -f1) in $DEPS ($n_debs packages unpacked)"
