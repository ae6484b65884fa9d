#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the ordering rule of mirroring, with the race
# forced through the real stm-send (test-mirror-order.sh does the same
# with the test consumer).  The filter holds every read's data for 3 s
# after the plugin returned it (-D migrate.read_delay_ms=3000), so
# stm-send's copy reads of the first pass are all in flight together.
# While they are held, a guest writes known patterns (and a zero) into
# the ranges they read; those writes complete and go through the ring.
# Each read's data is then older than the records of the writes: if
# stm-send sent a record before the stale read data it raced (breaking
# the rule of docs/architecture.md, "Mirroring"), the destination would
# keep the stale bytes.
#
# The test checks that the race did happen (every write issued after the
# read of its range reached the plugin, and completed well within the
# hold), that no later pass read those ranges again (so only the order of
# read data and records decided what the destination holds), and that the
# destination equals the fenced source.

source ./functions.sh
set -eu
requires_psk_migration

delay_ms=3000
export NBDKIT_OPTIONS="-v -D migrate.read_delay_ms=$delay_ms"
size_mib=4
start_psk_source "$size_mib"
cp "$tmp/src.img" "$tmp/orig.img"
log="$tmp/nbdkit.err"

# first_line PATTERN: the number of the first line of nbdkit's log
# matching PATTERN (an extended regular expression), or nothing.
first_line () { grep -n -E -m 1 "$1" "$log" | cut -d: -f1; }

start_psk_recv --once
start_stm_send send --tls-psk "$tmp/keys.psk" --converge mirror --max-passes 4

# stm-send reads the image in 1 MiB chunks, all issued at once: wait for
# the plugin to have served the reads of the first and the last MiB.
read_issued () { grep -q -E "debug: file: pread count=[0-9]+ offset=$1( |$)" "$log"; }
wait_for 30 "stm-send's first copy read" read_issued 0
wait_for 10 "stm-send's copy read of the last MiB" read_issued $(( 3 << 20 ))
t0=$(date +%s%N)
run_bounded 30 guest qemu-io -f raw \
    -c "write -P 0x5a 4096 4096" \
    -c "write -P 0xa5 $(( (1 << 20) + 65536 )) 65536" \
    -c "write -z $(( (2 << 20) + 12288 )) 8192" \
    -c "write -P 0x3c $(( (4 << 20) - 4096 )) 4096" \
    "$NBD_URI"
t1=$(date +%s%N)
[ "$EXIT_STATUS" -eq 0 ] || fail "the guest's writes failed: $(cat "$tmp/guest.err")"
took_ms=$(( (t1 - t0) / 1000000 ))
info "the guest's writes took $took_ms ms while the copy reads were held for $delay_ms ms"
[ "$took_ms" -lt $(( delay_ms - 1000 )) ] ||
    fail "the writes took $took_ms ms: they did not all complete while the reads were held"

wait_exit "$SEND_PID" 40
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send.err")"
wait_recv_once_done "after the migration"
state_is fenced || fail "the source is not fenced: $(ctl STATUS)"

# The race happened: each write reached the plugin after the copy read of
# its MiB had (and that read was held for $delay_ms ms from there).
for w in "pwrite count=4096 offset=4096 :0" \
         "pwrite count=65536 offset=$(( (1 << 20) + 65536 )) :$(( 1 << 20 ))" \
         "zero count=8192 offset=$(( (2 << 20) + 12288 )) :$(( 2 << 20 ))" \
         "pwrite count=4096 offset=$(( (4 << 20) - 4096 )) :$(( 3 << 20 ))"; do
    req="${w% :*}"
    chunk="${w##*:}"
    lw="$(first_line "debug: file: $req ")"
    lr="$(first_line "debug: file: pread count=[0-9]+ offset=$chunk( |$)")"
    [ -n "$lw" ] || fail "the guest's '$req' is not in nbdkit's log"
    [ -n "$lr" ] && [ "$lr" -lt "$lw" ] ||
        fail "the guest's '$req' (log line $lw) did not follow the copy read at $chunk (line $lr)"
    # Read once only: no later pass copied the range again.
    n="$(grep -c -E "debug: file: pread count=[0-9]+ offset=$chunk( |$)" "$log")"
    [ "$n" -eq 1 ] ||
        fail "the MiB at $chunk was read $n times: a later pass covered the race"
done
n="$(grep -c -E 'debug: file: pread ' "$log")"
[ "$n" -eq "$size_mib" ] ||
    fail "$n reads of the source, not one per MiB: $(grep -E 'debug: file: pread ' "$log" | head -n 10)"
info "every write raced the held copy read of its range, and no range was read twice"

records="$(json_field "$tmp/send.out" done mirror_records)"
[ -n "$records" ] && [ "$records" -ge 4 ] ||
    fail "stm-send mirrored ${records:-no} records, not the guest's 4 writes: $(tail -n 1 "$tmp/send.out")"
zeroed="$(json_field "$tmp/send.out" done mirror_zero_bytes)"
[ "$zeroed" -ge 8192 ] || fail "the guest's zero was not mirrored as one (mirror_zero_bytes=$zeroed)"

cmp -s "$tmp/src.img" "$tmp/orig.img" && fail "the guest's writes did not reach the source"
cmp "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the fenced source: a stale copy read landed after a mirrored write"
info "the records landed after the stale reads; the destination equals the fenced source"
info "PASS"
