#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: --converge mirror, and stm-send killed (SIGKILL)
# late in its first pass while the guest writes.  The filter takes the
# ring away when stm-send's control connection closes, and turns every
# record the destination had not made durable back into dirty blocks
# (STATUS: mirror=off, mirror_requeued).  stm-send run again with the same
# arguments resumes the migration (its start event says mode resume)
# without a copy from scratch (it sends less than the image) and finishes
# byte-identical to the fenced source: no write the ring held is lost.
#
# The guest writes only to the first 8 MiB of the 64 MiB image, and
# stm-send's --rate makes the first pass last about 8 s.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
start_psk_source "$size_mib"
start_writer_and_wait 8m 120 0 --rate=,2m

args=(--tls-psk "$tmp/keys.psk" --converge mirror --rate 8388608 --max-passes 10)
start_psk_recv --once
start_stm_send send "${args[@]}"
wait_for 30 "stm-send to send three quarters of the image" sent_at_least $(( size * 3 / 4 ))
alive "$SEND_PID" || fail "stm-send ended before it could be killed"
[ "$(status_field generation)" -eq 1 ] ||
    fail "stm-send is past its first pass already: $(ctl STATUS)"
[ "$(status_field mirror)" = mirror ] ||
    fail "the filter is not mirroring during the pass: $(ctl STATUS)"
sent1="$(json_field "$tmp/send.out" progress bytes_sent)"
info "killing stm-send (pid $SEND_PID) in its first pass, $sent1 bytes sent"
{ kill -KILL "$SEND_PID"; wait "$SEND_PID"; } 2>/dev/null || true

# The ring goes with its owner's connection; what was not durable is dirty.
ring_gone () { [ "$(status_field mirror)" = off ]; }
wait_for 10 "the filter to take the ring away" ring_gone
state_is tracking || fail "the source is not tracking after the sender died: $(ctl STATUS)"
alive "$RECV_PID" || fail "stm-recv exited when its sender died"
requeued="$(status_field mirror_requeued)"
info "after the kill: $(ctl STATUS | tr ' ' '\n' |
    grep -E '^(dirty_bytes|unconfirmed_bytes|mirror|mirror_(entries|fallbacks|requeued))=' | tr '\n' ' ')"
[ -n "$requeued" ] && [ "$requeued" -gt 0 ] ||
    fail "the filter requeued no record of the dead sender's ring (mirror_requeued=$requeued)"

run_stm_send send2 45 "${args[@]}"
[ "$EXIT_STATUS" -eq 0 ] ||
    fail "the second stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send2.err")"
grep -q '"event":"start".*"mode":"resume"' "$tmp/send2.out" ||
    fail "the second stm-send's start event does not say mode resume: $(grep '"event":"start"' "$tmp/send2.out")"
wait_recv_once_done "after the resumed migration"
state_is fenced || fail "the source is not fenced after the migration: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the fenced source after the sender was killed"
info "destination identical to the fenced source"

sent2="$(json_field "$tmp/send2.out" done bytes_sent)"
info "the second stm-send sent $sent2 bytes ($(json_field "$tmp/send2.out" done mirror_records) records) of a $size-byte image"
[ -n "$sent2" ] || fail "no summary from the second stm-send"
[ "$sent2" -lt "$size" ] ||
    fail "the second stm-send sent $sent2 bytes, not less than the image: a copy from scratch"
info "PASS"
