#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the freeze times out during the final pass.  The
# filter runs with migrate-freeze-timeout=2s and stm-send's final pass
# takes longer, so the filter thaws by itself before the flip.  stm-send
# must notice (the flip is refused), exit 1 and say that the freeze ended
# on its own; the source keeps tracking and takes every write.
#
# --converge throttle: the scenario needs a final pass that outlasts the freeze timeout,
# which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=32
start_psk_source "$size_mib" migrate-freeze-timeout=2s
start_writer_and_wait 16m 90 0 --rate=,1m

start_psk_recv
# The final pass: about 16 MiB at 2 MiB/s, far beyond the 2 s timeout.
# --max-passes 2: the full pass, then the final one at once.
run_stm_send send 90 --tls-psk "$tmp/keys.psk" --rate 2M --max-downtime 60s --converge throttle \
    --max-passes 2
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS after the freeze timed out, not 1"
grep -q '"event":"freeze"' "$tmp/send.out" || fail "stm-send never froze the source"
grep -Eiq 'freeze.*(ended|timed out|timeout)' "$tmp/send.err" ||
    fail "stm-send's error does not say the freeze ended by itself: $(cat "$tmp/send.err")"
info "stm-send said: $(head -n 1 "$tmp/send.err")"
[ "$(status_field thaws_by_timeout)" -ge 1 ] || fail "the filter did not count a thaw by timeout"

state_is tracking || fail "the source is not tracking after the failure: $(ctl STATUS)"
w="$(status_writes)"
wait_for 20 "guest writes to keep completing" writes_above "$w"
alive "$WRITER_PID" || fail "the guest writer stopped (a write failed?)"
nbd_write 20M 64k 0x4d || fail "a write to the source failed after the failure"
info "PASS"
