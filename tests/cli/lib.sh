# tests/cli/lib.sh: helpers for shell tests of the emu2 command. Source it, call ok/fail/skip,
# end with `finish`, which prints the RESULT line that tests/run.sh adds up.
_p=0 _f=0 _s=0
ok()   { _p=$((_p + 1)); echo "  ok   $1"; }
fail() { _f=$((_f + 1)); echo "  FAIL $1"; [ $# -gt 1 ] && printf '    %s\n' "$2"; }
skip() { _s=$((_s + 1)); echo "  skip $1: $2"; }
# expect_ok NAME CMD...: the command must exit 0
expect_ok() { local n=$1; shift; local o; if o=$("$@" 2>&1); then ok "$n"; else fail "$n" "$(printf '%s' "$o" | tail -n 5)"; fi; }
# expect_err NAME PATTERN CMD...: the command must exit non-zero (not by a signal) and print PATTERN
expect_err() {
    local n=$1 pat=$2; shift 2; local o rc
    o=$("$@" 2>&1); rc=$?
    if [ $rc -eq 0 ]; then fail "$n" "exit 0, expected an error"; return; fi
    if [ $rc -ge 128 ]; then fail "$n" "killed by signal $((rc - 128))"; return; fi
    if printf '%s' "$o" | grep -qiE -- "$pat"; then ok "$n"; else fail "$n" "message lacks /$pat/: $(printf '%s' "$o" | head -c 300)"; fi
}
finish() { echo "RESULT passed=$_p failed=$_f skipped=$_s"; [ $_f -eq 0 ]; }
EMU2=${EMU2_BIN:-build/bin/emu2}
SHARED=${EMU2_SHARED:-../shared}
