#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a sender killed (SIGKILL) during its second pass
# costs no full recopy.  A new stm-send to the same, still running
# receiver resumes the migration: it must send much less than the image,
# and the result must be byte-identical to the fenced source.
#
# The guest writes only to the first 4 MiB, so every pass after the first
# is small, and stm-send's --rate keeps the passes slow enough to be hit.
#
# --converge throttle: the scenario needs a second pass to kill the sender
# in; with mirroring (the default) the second pass is empty, and
# test-send-mirror-sender-killed.sh covers that case.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
rate=$(( 8 * 1024 * 1024 ))
start_psk_source "$size_mib"
start_writer_and_wait 4m 120 0 --rate=,1m

# check_resumed NAME: run NAME finished the migration without a full copy.
check_resumed ()
{
    [ "$EXIT_STATUS" -eq 0 ] || fail "$1: the resumed stm-send exited with $EXIT_STATUS"
    local sent
    sent="$(json_field "$tmp/$1.out" done bytes_sent)"
    info "$1: resumed run sent $sent bytes of a $size-byte image"
    [ -n "$sent" ] || fail "$1: no summary from the resumed stm-send"
    [ "$sent" -lt $(( size / 2 )) ] ||
        fail "$1: the resumed stm-send sent $sent bytes: a full recopy"
    grep -q '"event":"start".*"mode":"resume"' "$tmp/$1.out" ||
        fail "$1: stm-send's start event does not say mode resume"
}

start_psk_recv --once
start_stm_send send1 --tls-psk "$tmp/keys.psk" --rate "$rate" --converge throttle
wait_for 60 "stm-send to start its second pass" generation_at_least 2
alive "$SEND_PID" || fail "stm-send finished before it could be killed"
info "killing stm-send (pid $SEND_PID) in pass $(status_field generation)"
{ kill -KILL "$SEND_PID"; wait "$SEND_PID"; } 2>/dev/null || true
state_is tracking || fail "the source is not tracking after the sender died"
alive "$RECV_PID" || fail "stm-recv exited when its sender died"

run_stm_send send2 120 --tls-psk "$tmp/keys.psk" --converge throttle
check_resumed send2
# In all, the killed and the resumed stm-send stay well under a recopy: the
# killed one's last progress event says what it had sent (at most a
# second's worth more went out after it).
sent1="$(json_field "$tmp/send1.out" progress bytes_sent)"
sent2="$(json_field "$tmp/send2.out" done bytes_sent)"
[ -n "$sent1" ] || fail "no progress event from the killed stm-send"
total=$(( sent1 + rate + sent2 ))
info "sent $sent1 (+ up to $rate) before the kill and $sent2 after: $total of $size bytes"
[ "$total" -lt $(( size * 16 / 10 )) ] ||
    fail "$total bytes sent in all, not less than 1.6 x the $size-byte image"
state_is fenced || fail "the source is not fenced after the migration"
wait_recv_once_done
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source after a resumed migration"
info "resumed after the sender was killed; identical"
info "PASS"
