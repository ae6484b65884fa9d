#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the ordering rule of mirroring, with the race
# forced.  The filter holds every read's data for 2 s after the plugin
# returned it (-D migrate.read_delay_ms=2000); while the test consumer's
# first copy read is held, a guest write lands in the range it read and
# goes through the ring.  The read's data is then older than the ring's
# record of the write.
#
# 1. The consumer keeps the rule (the read's data goes in at the clock
#    sampled before the read was issued): the record is applied after the
#    stale data, and the copy equals the source.
# 2. The same consumer breaking the rule on purpose (clock sampled after
#    the read) applies the record first: the copy keeps the stale data.
#    This shows that case 1 did meet the race it passes.
# In both, nothing is dirty at the end: only the order decides.

source ./functions.sh
set -eu
requires_built
requires qemu-io --version
requires_mirror_consumer

head -c $(( 512 << 10 )) /dev/urandom > "$tmp/orig.img"
export NBDKIT_OPTIONS="-D migrate.read_delay_ms=2000"

# run_case NAME [CONSUMER-OPTION...]: sets CMP_STATUS (0: equal).
run_case ()
{
    local name="$1" t0 t1
    shift
    cp "$tmp/orig.img" "$tmp/src.img"
    rm -f "$tmp/stop" "$tmp/copy.img"
    start_nbdkit_migrate "$tmp/src.img"
    spawn "$tmp/consumer.out" "$tmp/consumer.err" "$CONSUMER" \
          --control "$CTL_SOCK" --uri "$NBD_URI" --copy "$tmp/copy.img" \
          --until "$tmp/stop" --ring $(( 1 << 20 )) --verbose "$@"
    local cpid=$SPAWNED_PID
    wait_for 30 "$name: the consumer's first copy read" grep -q '^reading 0+' "$tmp/consumer.out"
    # The read is now held in the filter: write into its range.
    t0=$(date +%s%N)
    run_bounded 30 guest qemu-io -f raw -c "write -P 0x5a 4096 4096" "$NBD_URI"
    t1=$(date +%s%N)
    [ "$EXIT_STATUS" -eq 0 ] || fail "$name: the guest's write failed: $(cat "$tmp/guest.err")"
    [ $(( (t1 - t0) / 1000000 )) -lt 1500 ] ||
        fail "$name: the write took $(( (t1 - t0) / 1000000 )) ms, longer than the read is held"
    grep -q '^reading 0+.* at clock 0$' "$tmp/consumer.out" ||
        fail "$name: the first read did not start before the write: $(cat "$tmp/consumer.out")"
    touch "$tmp/stop"
    wait_exit "$cpid" 60
    [ "$EXIT_STATUS" -eq 0 ] || fail "$name: the consumer failed: $(cat "$tmp/consumer.err")"
    grep -q '^final pass: 0 bytes dirty, 1 records applied' "$tmp/consumer.out" ||
        fail "$name: not exactly one record and nothing dirty: $(cat "$tmp/consumer.out")"
    CMP_STATUS=0
    cmp -s "$tmp/src.img" "$tmp/copy.img" || CMP_STATUS=$?
    stop_nbdkit
}

run_case rule
[ "$CMP_STATUS" -eq 0 ] || fail "keeping the rule, the copy differs from the source"
info "keeping the rule: the record landed after the stale read; the copy equals the source"

run_case broken-rule --clock-after-read
[ "$CMP_STATUS" -ne 0 ] ||
    fail "breaking the rule left the copy equal: the test did not force the race"
cmp -s -n 4096 -i 4096:4096 "$tmp/copy.img" "$tmp/orig.img" ||
    fail "breaking the rule: the copy differs elsewhere than the stale block"
info "breaking the rule: the stale read landed after the record, as expected"
