#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a stm-recv that cannot bind its address (another
# stm-recv holds it) exits 1 saying so, and leaves no new file behind:
# the output it was given must not exist afterwards.  An output that was
# there before a failed start is left as it was (never removed), and a
# start that fails for another reason after creating the output (the
# output's directory refuses the state file) removes what it created.

source ./functions.sh
set -eu
requires_built

# The first receiver holds the address.
start_stm_recv --output "$tmp/first.img" --insecure
addr="127.0.0.1:$RECV_PORT"

rc=0
"$STM_RECV" --listen "$addr" --output "$tmp/second.img" --insecure \
    >"$tmp/second.out" 2>"$tmp/second.err" || rc=$?
info "the second stm-recv exited with $rc: $(cat "$tmp/second.err")"
[ "$rc" -eq 1 ] || fail "the second stm-recv exited with $rc, not 1"
grep -q "cannot listen on $addr" "$tmp/second.err" ||
    fail "the second stm-recv did not say it cannot listen on $addr"
[ ! -e "$tmp/second.img" ] ||
    fail "the failed stm-recv left an output file behind: $(ls -l "$tmp/second.img")"

# An existing output is never removed by a failed start, empty or not.
: >"$tmp/existing.img"
rc=0
"$STM_RECV" --listen "$addr" --output "$tmp/existing.img" --insecure \
    >/dev/null 2>"$tmp/existing.err" || rc=$?
[ "$rc" -eq 1 ] || fail "stm-recv on a taken address exited with $rc, not 1"
[ -e "$tmp/existing.img" ] || fail "a failed start removed an output it did not create"

# A failure after the output was created: a directory where the output's
# state file (IMAGE.stm-state) goes makes the start fail once the output
# exists; the output it created must go again.
mkdir "$tmp/third.img.stm-state"
run_bounded 30 third "$STM_RECV" --listen 127.0.0.1:0 --output "$tmp/third.img" --insecure
info "with its state file's path taken by a directory, stm-recv exited with $EXIT_STATUS: $(cat "$tmp/third.err")"
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-recv exited with $EXIT_STATUS, not 1"
[ ! -e "$tmp/third.img" ] || fail "the failed stm-recv left the output it created behind"
info "PASS"
