#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: what a new user reads when a command line is
# wrong.  Both CLIs give usage errors one shape ("PROG: error: ..." then
# "Try 'PROG --help' for more information.", exit 2); stm-send's --dest
# names the [IPv6]:PORT form as stm-recv's --listen does; --max-downtime 0
# and --max-passes 1 are refused; and a --control that names a regular
# file is reported as such, not as "Connection refused".

source ./functions.sh
set -eu
requires_built

# expect_usage NAME PATTERN PROG ARG...: PROG ARGS must exit 2, print the
# error matching PATTERN and the help hint.
expect_usage ()
{
    local name="$1" pattern="$2" prog="$3"
    shift 3
    local rc=0
    "$prog" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "$name: exit status $rc, not 2: $(cat "$tmp/$name.err")"
    local base
    base="$(basename "$prog")"
    grep -q "^$base: error: $pattern" "$tmp/$name.err" ||
        fail "$name: no '$base: error: $pattern' in: $(cat "$tmp/$name.err")"
    [ "$(tail -n 1 "$tmp/$name.err")" = "Try '$base --help' for more information." ] ||
        fail "$name: the last line is not the help hint: $(cat "$tmp/$name.err")"
    info "$name: $(head -n 1 "$tmp/$name.err")"
}

send=(--source nbd://127.0.0.1 --control "$tmp/ctl" --insecure)
expect_usage dest-v6 "--dest '::1:10809': expected HOST:PORT or \[IPv6\]:PORT" \
    "$STM_SEND" "${send[@]}" --dest ::1:10809
expect_usage listen-v6 "--listen '::1:10809': expected HOST:PORT, \[IPv6\]:PORT" \
    "$STM_RECV" --listen ::1:10809 --output "$tmp/out.img" --insecure
expect_usage downtime-0 "--max-downtime '0': 0 allows no cutover" \
    "$STM_SEND" "${send[@]}" --dest 127.0.0.1:1 --max-downtime 0
expect_usage downtime-0ms "--max-downtime '0ms': 0 allows no cutover" \
    "$STM_SEND" "${send[@]}" --dest 127.0.0.1:1 --max-downtime 0ms
expect_usage passes-1 "--max-passes '1': expected a number from 2" \
    "$STM_SEND" "${send[@]}" --dest 127.0.0.1:1 --max-passes 1
expect_usage send-unknown "unknown or ambiguous option '--bogus'" \
    "$STM_SEND" --bogus
expect_usage recv-unknown "unknown or ambiguous option '--bogus'" \
    "$STM_RECV" --bogus
expect_usage send-no-tls "no transport security chosen: give exactly one of" \
    "$STM_SEND" --source nbd://127.0.0.1 --control "$tmp/ctl" --dest 127.0.0.1:1
expect_usage recv-no-tls "no transport security chosen: give exactly one of" \
    "$STM_RECV" --listen 127.0.0.1:0 --output "$tmp/out.img"
expect_usage send-missing "option '--rate' needs an argument" \
    "$STM_SEND" "${send[@]}" --dest 127.0.0.1:1 --rate
expect_usage recv-missing "option '--output' needs an argument" \
    "$STM_RECV" --listen 127.0.0.1:0 --insecure --output

# A --control naming a regular file, with a real source and receiver.
requires socat -V
start_source 4
: >"$tmp/not-a-socket"
start_stm_recv --output "$tmp/dst.img" --insecure
rc=0
"$STM_SEND" --source "$NBD_URI" --control "$tmp/not-a-socket" \
    --dest "127.0.0.1:$RECV_PORT" --insecure --no-progress \
    >"$tmp/ctl.out" 2>"$tmp/ctl.err" || rc=$?
info "stm-send with a regular file as --control: $(cat "$tmp/ctl.err")"
[ "$rc" -eq 1 ] || fail "stm-send exited with $rc, not 1"
grep -q "not-a-socket: it is a regular file, not a Unix socket" "$tmp/ctl.err" ||
    fail "stm-send did not say that --control names a regular file"
if grep -q "Connection refused" "$tmp/ctl.err"; then
    fail "stm-send still says Connection refused for a regular file"
fi
grep -q "the source is unchanged" "$tmp/ctl.err" ||
    fail "stm-send did not say what state the source is in"
info "PASS"
