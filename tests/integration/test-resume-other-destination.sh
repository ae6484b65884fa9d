#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a migration resumed after another migration used
# the same source.  stm-send is killed halfway into a receiver, so that
# receiver holds an incomplete migration it would resume.  Then another
# migration (here a control client naming another migration id) resets
# the source's tracking and confirms every block to its own destination,
# and the guest writes new data.  When stm-send runs again to the first
# receiver, that receiver answers "resume", but the filter refuses to
# RESUME tracking that now follows the other migration (ESTALE), and
# stm-send goes over everything again (the receiver holds an earlier run,
# so it compares: every block is hashed on both sides, and what differs
# is copied): the destination must equal the source.  Without that
# refusal every block would count as copied and the destination would
# keep stale data.

source ./functions.sh
set -eu
requires_psk_migration
requires socat -V

size_mib=32
size=$(( size_mib * 1024 * 1024 ))
start_psk_source "$size_mib"
nbd_touch
start_psk_recv

# A first run, killed while it copies (the rate keeps it slow).
start_stm_send send1 --tls-psk "$tmp/keys.psk" --rate 4M
first_run_sent_8m ()
{
    local sent; sent="$(json_field "$tmp/send1.out" progress bytes_sent)"
    [ -n "$sent" ] && [ "$sent" -ge $(( 8 * 1024 * 1024 )) ]
}
wait_for 60 "the first run to send 8 MiB" first_run_sent_8m
# A SYNC goes out every second: let one come back durable.
sleep 1.5
alive "$SEND_PID" || fail "stm-send finished before it could be killed"
{ kill -KILL "$SEND_PID"; wait "$SEND_PID"; } 2>/dev/null || true
mid="$(sed -n 's/.*"event":"start".*"migration_id":"\([0-9a-f]*\)".*/\1/p' "$tmp/send1.out")"
[ -n "$mid" ] || fail "no migration id in the first run's start event"
info "first run ($mid) killed after $(json_field "$tmp/send1.out" progress bytes_sent) bytes"

# Another migration: it resets the tracking and confirms every block.
other=0123456789abcdef0123456789abcdef
ctl_open other
r="$(ctl_send other "RESET $other")"
case "$r" in "OK dirty_blocks="*) ;; *) fail "RESET $other answered '$r'" ;; esac
r="$(ctl_send other SNAPSHOT | head -n 1)"
case "$r" in "OK generation="*) ;; *) fail "SNAPSHOT answered '$r'" ;; esac
r="$(ctl_send other "CONFIRM 0 $size")"
case "$r" in "OK confirmed"*) ;; *) fail "CONFIRM answered '$r'" ;; esac
r="$(ctl_send other "RESUME $mid")"
case "$r" in "ERR ESTALE"*"follows migration $other"*) ;;
    *) fail "RESUME of the first migration after another's RESET answered '$r'" ;; esac
ctl_close other
[ "$(status_field migration)" = "$other" ] ||
    fail "STATUS does not name the other migration: $(ctl STATUS)"
[ "$(status_field dirty_blocks)" -eq 0 ] && [ "$(status_field unconfirmed_blocks)" -eq 0 ] ||
    fail "the other migration did not leave every block confirmed: $(ctl STATUS)"

# The guest writes after that: new data the first receiver lacks.
nbd_write 1M 2M 0x5a || fail "the guest's write failed"
nbd_write 20M 1M 0xa5 || fail "the guest's write failed"

run_stm_send send2 120 --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "the second run exited with $EXIT_STATUS"
grep -q '"event":"start".*"mode":"resume"' "$tmp/send2.out" ||
    fail "the receiver did not answer resume to the second run"
grep -q "follows migration $other" "$tmp/send2.err" ||
    fail "stm-send did not say why it copies everything again: $(cat "$tmp/send2.err")"
compared="$(json_field "$tmp/send2.out" done bytes_compared)"
zeroed="$(json_field "$tmp/send2.out" done bytes_zeroed)"
copied="$(json_field "$tmp/send2.out" done bytes_copied)"
info "second run compared $compared, zeroed $zeroed and copied $copied bytes of $size"
[ $(( compared + zeroed )) -ge "$size" ] ||
    fail "the second run went over $(( compared + zeroed )) bytes, not the whole image"
# What the guest wrote meanwhile (3 MiB) differs, and is copied.
[ "$copied" -ge $(( 3 * 1024 * 1024 )) ] || fail "the second run copied only $copied bytes"
state_is fenced || fail "the source is not fenced after the migration"
stop_nbdkit
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the source"
info "PASS"
