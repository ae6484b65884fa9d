#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a group of two disks migrated into destinations
# that hold older copies of them.  stm-recv --force keeps both outputs
# for a sender that compares, the first pass compares each disk, only
# the blocks that changed are copied, and both destinations end
# byte-identical, each with its own bytes_compared in the summary.

source ./functions.sh
set -eu
requires_psk_migration

start_disk sys 48
start_disk data 32
make_psk "$tmp/keys.psk"
block=65536
# Older copies: each differs from its source in a few 64 KiB blocks.
cp "$tmp/sys-src.img" "$tmp/sys-dst.img"
cp "$tmp/data-src.img" "$tmp/data-dst.img"
changed=0
for b in 1 100 300 700; do
    dd if=/dev/urandom of="$tmp/sys-dst.img" bs="$block" count=1 seek="$b" \
       conv=notrunc status=none
    changed=$(( changed + block ))
done
for b in 5 400; do
    dd if=/dev/urandom of="$tmp/data-dst.img" bs="$block" count=1 seek="$b" \
       conv=notrunc status=none
    changed=$(( changed + block ))
done

start_stm_recv --output sys="$tmp/sys-dst.img" --output data="$tmp/data-dst.img" \
    --tls-psk "$tmp/keys.psk" --json --once --force
run_group_send send 120 sys data -- --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send.err")"
wait_recv_once_done "after the group migration"
grep -q "comparing the first pass" "$tmp/send.err" ||
    fail "stm-send did not compare the group's first pass"
for d in sys data; do
    cmp "$tmp/$d-src.img" "$tmp/$d-dst.img" ||
        fail "disk $d: the destination differs from the fenced source"
done

last="$(tail -n 1 "$tmp/send.out")"
# The group's count (the summary's first; json_field would find a disk's).
copied="$(echo "$last" | python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes_copied"])')"
info "copied $copied bytes of $(( (48 + 32) * 1024 * 1024 )) ($changed changed)"
[ "$copied" -ge "$changed" ] && [ "$copied" -le $(( changed * 2 )) ] ||
    fail "copied $copied bytes for $changed changed"
for d in sys data; do
    c="$(echo "$last" | sed -n "s/.*{\"name\":\"$d\",[^}]*\"bytes_compared\":\([0-9]*\).*/\1/p")"
    [ -n "$c" ] && [ "$c" -gt 0 ] || fail "disk $d compared nothing: $last"
done
info "PASS"
