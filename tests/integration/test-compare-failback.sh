#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: fail-back.  A disk migrated away and then back
# into its first home, which still holds the old contents, sends only the
# blocks that changed meanwhile: stm-recv --force takes the old image
# over (it holds data but no state file) and keeps it for a sender that
# compares, the first pass compares hashes, and the destination ends
# byte-identical.  Before hash comparison the migration back copied
# everything (1.00x the image).

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
block=65536
start_psk_source "$size_mib"
# The disk's first home, as the guest left it.
cp "$tmp/src.img" "$tmp/home.img"

migrate_psk_once 120
state_is fenced || fail "the source is not fenced after the migration away"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the migration away is not identical"

# The guest now runs from the destination, and changes 2% of its 64 KiB
# blocks: 20 of 1024, at offsets spread over the disk.
stop_nbdkit
start_nbdkit_migrate "$tmp/dst.img"
changed=0
for b in 3 50 97 144 191 238 285 332 379 426 473 520 567 614 661 708 755 802 849 1000; do
    nbd_write $(( b * block )) "$block" 0x5a || fail "cannot write block $b through the filter"
    changed=$(( changed + block ))
done
cmp -s "$tmp/home.img" "$tmp/dst.img" && fail "the guest's writes did not change the disk"

# Back home, comparing.
mv "$tmp/recv.out" "$tmp/recv-away.out"
start_stm_recv --output "$tmp/home.img" --tls-psk "$tmp/keys.psk" --json --once --force
# As the README's "Moving a disk back" runs it: --verify at the freeze.
run_stm_send back 120 --tls-psk "$tmp/keys.psk" --verify
[ "$EXIT_STATUS" -eq 0 ] || fail "the migration back exited with $EXIT_STATUS"
wait_recv_once_done "after the migration back"
grep -q "comparing the first pass" "$tmp/back.err" ||
    fail "stm-send did not say it compared the first pass"
grep -q '"event":"verify".*"result":"identical"' "$tmp/back.out" ||
    fail "the migration back was not verified identical at the freeze"
grep -q '"kept":true' "$tmp/recv.out" ||
    fail "stm-recv did not say it kept the old image to compare against"
cmp "$tmp/dst.img" "$tmp/home.img" || fail "the disk back home differs from the one it left"

copied="$(json_field "$tmp/back.out" done bytes_copied)"
compared="$(json_field "$tmp/back.out" done bytes_compared)"
[ -n "$copied" ] && [ -n "$compared" ] || fail "the summary lacks bytes_copied or bytes_compared"
info "back home: compared $compared bytes, copied $copied of a $size-byte image ($changed changed)"
[ "$compared" -ge $(( size * 9 / 10 )) ] || fail "only $compared bytes were compared"
[ "$copied" -ge "$changed" ] || fail "copied $copied bytes, fewer than the $changed that changed"
[ "$copied" -le $(( size / 20 )) ] || fail "copied $copied bytes: more than 5% of the image"
info "PASS"
