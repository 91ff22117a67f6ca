#!/usr/bin/env bash
# scripts/deps.sh: installs the Debian 12 packages emu2 needs to build and test, when missing.
# Idempotent and quiet when nothing is missing. Needs root (or sudo) only when something is missing.
set -eu
pkgs=(
    build-essential pkg-config
    libturbojpeg0-dev libpng-dev libsentencepiece-dev libjansson-dev   # the engine
    clang-14 libclang-rt-14-dev                                        # fuzz targets, sanitizers
    liblua5.4-dev lua5.4                                               # the Lua module
    luarocks                                                           # the Lua module: luarocks make
    postgresql-15 postgresql-server-dev-15                             # the PostgreSQL extension
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: missing packages and not root: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
