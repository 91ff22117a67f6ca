# The Lua module: every tests/lua/test_*.lua in its own lua5.4 process (the plain runner in
# tests/lua/harness.lua), then `luarocks make` of lua/emu2-*.rockspec into a fresh tree and a
# `require "emu2"` from it. Adds everything up into one RESULT line.
. tests/cli/lib.sh
build=${EMU2_BUILD:-$PWD/build}
module=$build/lua/emu2.so
if ! command -v lua5.4 >/dev/null; then
    skip "Lua module" "no lua5.4 (scripts/deps.sh installs it)"
    finish; exit
fi
if [ ! -f "$module" ]; then
    skip "Lua module" "no $module (make lua)"
    finish; exit
fi
export EMU2_ROOT="${EMU2_ROOT:-$PWD}" EMU2_BUILD="$build"

for t in tests/lua/test_*.lua; do
    echo "  -- $t"
    out=$(lua5.4 "$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^RESULT '
    line=$(printf '%s\n' "$out" | grep -E '^RESULT passed=[0-9]+ failed=[0-9]+ skipped=[0-9]+$' | tail -n 1)
    if [ -z "$line" ]; then
        fail "$t" "exited $rc without a RESULT line"
        continue
    fi
    read -r p f s < <(sed -E 's/RESULT passed=([0-9]+) failed=([0-9]+) skipped=([0-9]+)/\1 \2 \3/' <<<"$line")
    _p=$((_p + p)); _f=$((_f + f)); _s=$((_s + s))
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && fail "$t" "exited $rc"
done

# luarocks make into a fresh tree, reusing this build folder (the Makefile reads BUILD from the
# environment), then require "emu2" from that tree only.
if ! command -v luarocks >/dev/null; then
    skip "luarocks make" "no luarocks (scripts/deps.sh installs it)"
else
    tree=$(mktemp -d); trap 'rm -rf "$tree"' EXIT
    rockspec=$(ls lua/emu2-*.rockspec | head -n 1)
    if BUILD="$build" luarocks --lua-version=5.4 --tree="$tree" make "$rockspec" >"$tree/log" 2>&1; then
        ok "luarocks make $rockspec into a fresh tree"
        got=$(LUA_CPATH_5_4="$tree/lib/lua/5.4/?.so" MODEL=models/emu2-tiny-digits lua5.4 -e '
            local emu2 = require "emu2"
            local where = package.searchpath("emu2", package.cpath)
            local dir = os.getenv("MODEL")
            local f = assert(io.open(dir .. "/examples/blue_black_1_top_left.jpg", "rb"))
            local m <close> = assert(emu2.load(dir))
            print(where, m:describe(f:read("a"), {prompt = ""}))' 2>&1)
        case "$got" in
            "$tree/lib/lua/5.4/emu2.so	[blue, black, 1, top left]") ok "require \"emu2\" from the luarocks tree works" ;;
            *) fail "require \"emu2\" from the luarocks tree works" "$got" ;;
        esac
    else
        fail "luarocks make $rockspec into a fresh tree" "$(tail -n 5 "$tree/log")"
    fi
fi
finish
