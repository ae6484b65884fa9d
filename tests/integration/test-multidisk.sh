#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: one stm-send migrating a group of three named
# disks of different sizes (--disk, each its own nbdkit --filter=migrate)
# to one stm-recv (--output NAME=IMAGE) over TLS, while fio writes to two
# of them at once.  One cutover for the group: every destination is
# byte-identical to its fenced source, there is one freeze event, the
# summary carries each disk's figures, and the receiver's one state file
# records the group final.  Then a single --disk: a group of one.

source ./functions.sh
set -eu
requires_psk_migration

start_disk sys 96
start_disk data 48
start_disk empty 16
make_psk "$tmp/keys.psk"
start_disk_writer sys 96m 120 --rate=,3m
start_disk_writer data 48m 120 --rate=,3m
wait_for 30 "the writers to start" disk_writes_above sys 0
wait_for 30 "the writers to start" disk_writes_above data 0

start_stm_recv --output sys="$tmp/sys-dst.img" --output data="$tmp/data-dst.img" \
    --output empty="$tmp/empty-dst.img" --tls-psk "$tmp/keys.psk" --json --once
run_group_send send 180 sys data empty -- --tls-psk "$tmp/keys.psk" --max-passes 10
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send.err")"
wait_recv_once_done "after the group migration"

for d in sys data empty; do
    [ "$(disk_status "$d" state)" = fenced ] ||
        fail "disk $d is not fenced: $(CTL_SOCK="$(disk_ctl "$d")" ctl STATUS)"
    cmp "$tmp/$d-src.img" "$tmp/$d-dst.img" ||
        fail "disk $d: the destination differs from the fenced source"
done
info "every destination identical to its fenced source"
for d in sys data; do
    w="$(disk_status "$d" writes)"
    [ "$w" -gt 0 ] || fail "no guest write reached disk $d"
done

out="$tmp/send.out"
n="$(grep -c '"event":"freeze"' "$out")"
[ "$n" -eq 1 ] || fail "$n freeze events, not one for the group"
grep -q '"event":"start".*"disks":\[{"name":"sys"' "$out" ||
    fail "the start event does not list the disks: $(grep '"start"' "$out")"
last="$(tail -n 1 "$out")"
case "$last" in *'"event":"done"'*) ;; *) fail "the last line is not the summary: $last" ;; esac
counts='"bytes_sent":[0-9]*,"bytes_copied":[0-9]*,"bytes_zeroed":[0-9]*,"bytes_compared":[0-9]*'
for d in sys data empty; do
    echo "$last" | grep -q "{\"name\":\"$d\",\"size\":[0-9]*,\"block\":[0-9]*,$counts" ||
        fail "the summary lacks disk $d's figures: $last"
    # Progress and pass_end events carry each disk's figures too.
    for ev in progress pass_end; do
        grep "\"event\":\"$ev\"" "$out" | tail -n 1 |
            grep -q "{\"name\":\"$d\",$counts,\"dirty_bytes\":[0-9]*}" ||
            fail "the $ev events lack disk $d's figures: $(grep "\"$ev\"" "$out" | tail -n 1)"
    done
done
# disk_count DISK KEY: KEY in DISK's object of the summary; group_count
# KEY: the group's (the first KEY in the line, before the disks).
disk_count () { echo "$last" | grep -o "\"name\":\"$1\",[^}]*" | grep -o "\"$2\":[0-9]*" | cut -d: -f2; }
group_count () { echo "$last" | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }
# The images are random bytes: each disk was copied in full at least,
# nothing of it zeroed, and the group's counts are the disks' added up.
sum_copied=0 sum_sent=0
for d in sys data empty; do
    size="$(echo "$last" | grep -o "\"name\":\"$d\",\"size\":[0-9]*" | cut -d: -f3)"
    copied="$(disk_count "$d" bytes_copied)"
    [ "$copied" -ge "$size" ] || fail "disk $d: bytes_copied=$copied is less than its size $size"
    [ "$(disk_count "$d" bytes_zeroed)" -eq 0 ] || fail "disk $d of random bytes had bytes zeroed"
    sum_copied=$(( sum_copied + copied ))
    sum_sent=$(( sum_sent + $(disk_count "$d" bytes_sent) ))
done
[ "$(group_count bytes_copied)" -eq "$sum_copied" ] && [ "$(group_count bytes_sent)" -eq "$sum_sent" ] ||
    fail "the group's counts are not its disks' added up: $last"
[ "$(group_count wire_bytes)" -gt "$sum_sent" ] || fail "the group's wire_bytes is not more than bytes_sent"
n="$(grep -c '"event":"flip"' "$out")"
[ "$n" -eq 1 ] || fail "$n flip events, not one for the group"
for d in sys data empty; do
    grep '"event":"flip"' "$out" | grep -q "{\"name\":\"$d\",\"mode\":\"fence\"" ||
        fail "the flip event does not say disk $d was fenced: $(grep '"flip"' "$out")"
done
# The report draws a group's events (stm-report ignores the nested arrays).
"$abs_top_builddir/report/stm-report" < "$out" > "$tmp/report.html" ||
    fail "stm-report cannot draw the group's events"
grep -q '<svg' "$tmp/report.html" || fail "the report of the group has no timeline"

# One state file for the group, beside the output whose name sorts first.
state="$tmp/data-dst.img.stm-state"
[ -f "$state" ] || fail "no group state file $state"
grep -qx 'state final' "$state" || fail "the group is not recorded final: $(cat "$state")"
grep -qx 'disks 3' "$state" || fail "the state file does not hold three disks"
[ ! -e "$tmp/sys-dst.img.stm-state" ] || fail "a second state file beside sys"
info "downtime_ms=$(json_field "$out" done downtime_ms) passes=$(json_field "$out" done passes)"

# A single --disk is a group of one named disk (the HELLO's disk table).
start_disk solo 8
start_stm_recv --output solo="$tmp/solo-dst.img" --tls-psk "$tmp/keys.psk" --json --once
run_group_send one 60 solo -- --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send --disk (one disk) exited with $EXIT_STATUS"
wait_recv_once_done "after a group of one disk"
cmp "$tmp/solo-src.img" "$tmp/solo-dst.img" || fail "the one named disk differs"
grep -qx 'disks 1' "$tmp/solo-dst.img.stm-state" ||
    fail "the receiver did not record a named group of one: $(cat "$tmp/solo-dst.img.stm-state")"
info "PASS"
