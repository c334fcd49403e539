#!/bin/sh
# expect_exit.sh CODE PATTERN CMD [ARGS...]
# Runs CMD and passes only if it exits with CODE, prints nothing on stdout, and
# prints exactly one line on stderr that matches the extended regex PATTERN.
code=$1
pattern=$2
shift 2
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$@" >"$out" 2>"$err"
rc=$?
fail() { echo "FAIL: $*"; echo "--- stdout:"; cat "$out"; echo "--- stderr:"; cat "$err"; exit 1; }
[ "$rc" -eq "$code" ] || fail "exit code $rc, expected $code"
[ ! -s "$out" ] || fail "expected nothing on stdout"
lines=$(wc -l <"$err")
[ "$lines" -eq 1 ] || fail "expected one line on stderr, got $lines"
grep -E -q -e "$pattern" "$err" || fail "stderr does not match: $pattern"
echo "ok: exit $rc: $(cat "$err")"
