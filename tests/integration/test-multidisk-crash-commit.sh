#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a group's sender killed at the point of no return
# leaves one complete set, and the same command run again finishes the
# migration.  Two named disks with a writer each, one stm-send, one
# stm-recv --once:
#  committed: stm-send killed between the group's COMMITTED and its FLIPs
#     (STM_SEND_TEST_CRASH_AT=committed): every disk thaws by itself
#     (its filter's owner died) and serves, the receiver records the group
#     prepared (not final) and keeps waiting; stm-send run again resumes
#     (no recopy), flips both, and only then is the group final, --once
#     exits 0 and each destination equals its fenced source;
#  flipped: stm-send killed right after the FLIPs: both disks fenced, the
#     group prepared; run again, stm-send says the migration had already
#     flipped, records it final (exit 0), and both destinations equal
#     their fenced sources.
# Either way there is never a moment without exactly one complete set:
# the sources (tracking, nothing final) or the destinations (flipped).

source ./functions.sh
set -eu
requires_psk_migration

mib=16
size=$(( 2 * mib * 1024 * 1024 ))
make_psk "$tmp/keys.psk"

# record FIRST-DISK: the receiver's record of the group (its state file is
# beside the output whose name sorts first).
record () { sed -n 's/^state //p' "$tmp/$1-dst.img.stm-state" 2>/dev/null; }

# both_serve D1 D2: both disks tracking and taking their writers' writes.
both_serve ()
{
    local d w
    for d in "$@"; do
        [ "$(disk_status "$d" state)" = tracking ] || return 1
        w="$(disk_status "$d" writes)"
        wait_for 10 "disk $d to take writes again" disk_writes_above "$d" "$w"
    done
}

# group CASE D1 D2: two fresh disks, their writers, a receiver for them.
group ()
{
    info "---- case $1"
    start_disk "$2" "$mib"
    start_disk "$3" "$mib"
    start_disk_writer "$2" 2m 60 --rate=,256k
    start_disk_writer "$3" 2m 60 --rate=,256k
    wait_for 30 "the writer of disk $3 to start" disk_writes_above "$3" 0
    start_stm_recv --output "$2=$tmp/$2-dst.img" --output "$3=$tmp/$3-dst.img" \
        --tls-psk "$tmp/keys.psk" --json --once
}

# identical D...: every destination equals its fenced source.
identical ()
{
    local d
    for d in "$@"; do
        [ "$(disk_status "$d" state)" = fenced ] || fail "disk $d is not fenced"
        cmp "$tmp/$d-src.img" "$tmp/$d-dst.img" ||
            fail "disk $d: the destination differs from its fenced source"
    done
}

# committed: killed between COMMITTED and FLIP.
group committed a b
STM_SEND_TEST_CRASH_AT=committed run_group_send send1 60 a b -- --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 137 ] || fail "stm-send was not killed at the group commit (status $EXIT_STATUS)"
wait_for 10 "both disks to thaw when their owner died" \
    eval '[ "$(disk_status a state)" = tracking ] && [ "$(disk_status b state)" = tracking ]'
both_serve a b
[ "$(record a)" = prepared ] || fail "the group is recorded $(record a), not prepared, after the commit"
alive "$RECV_PID" || fail "stm-recv --once exited although no disk flipped"
info "killed at the commit: both sources serve, the group is prepared"
run_group_send send2 60 a b -- --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "the restarted stm-send exited $EXIT_STATUS: $(tail -n 3 "$tmp/send2.err")"
grep -q '"event":"start".*"mode":"resume"' "$tmp/send2.out" ||
    fail "the restarted stm-send did not resume the group"
sent="$(json_field "$tmp/send2.out" done bytes_sent)"
[ "$sent" -lt $(( size / 2 )) ] || fail "the restarted stm-send sent $sent of $size bytes: a recopy"
wait_recv_once_done "after the group flipped"
[ "$(record a)" = final ] || fail "the group is recorded $(record a), not final, after the flip"
identical a b
info "run again: resumed ($sent bytes), both flipped, final, both identical"

# flipped: killed right after the FLIPs.
group flipped c d
STM_SEND_TEST_CRASH_AT=flipped run_group_send send3 60 c d -- --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 137 ] || fail "stm-send was not killed after the flips (status $EXIT_STATUS)"
identical c d
[ "$(record c)" = prepared ] || fail "the group is recorded $(record c), not prepared, after the flips"
alive "$RECV_PID" || fail "stm-recv --once exited before the flips were recorded"
info "killed after the flips: both fenced, the group prepared"
run_group_send send4 60 c d -- --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "the restarted stm-send exited $EXIT_STATUS with both disks fenced"
grep -q "had already flipped" "$tmp/send4.err" ||
    fail "the restarted stm-send does not say the group had already flipped: $(tail -n 3 "$tmp/send4.err")"
grep -q '"event":"done".*"destination":"final"' "$tmp/send4.out" ||
    fail "the summary does not say the destination is final"
wait_recv_once_done "after the flips were recorded"
[ "$(record c)" = final ] || fail "the group is recorded $(record c), not final"
identical c d
info "run again: recorded final, both identical"
info "PASS"
