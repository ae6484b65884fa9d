#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a sparse source stays sparse.  A 16 GiB image
# holding a few ranges of data (one not aligned to the filter's blocks, one
# of allocated zeroes) migrates with stm-send asking the source for block
# status: the destination must equal the source byte for byte, hold little
# more than the data on disk, and the holes must not have been read (the
# run must take a few seconds, not the time of reading 16 GiB).  The
# summary's counts must say what happened: the data copied (at least what
# was written, at most what the file has allocated), the rest zeroed, and
# only the data and the frames' headers on the wire.

source ./functions.sh
set -eu
requires_built
requires qemu-img --version

size=$(( 16 * 1024 * 1024 * 1024 ))
truncate -s "$size" "$tmp/src.img"
write_at () { dd if="$2" of="$tmp/src.img" bs=4k seek=$(( $1 / 4096 )) \
                 count=$(( $3 / 4096 )) conv=notrunc status=none iflag=fullblock; }
write_at 0 /dev/urandom $(( 4 * 1024 * 1024 ))
write_at $(( 1024 * 1024 * 1024 + 4096 )) /dev/urandom $(( 100 * 1024 ))
write_at $(( 2 * 1024 * 1024 * 1024 )) /dev/zero $(( 8 * 1024 * 1024 ))
write_at $(( size - 1024 * 1024 )) /dev/urandom $(( 1024 * 1024 ))
data=$(( (4 * 1024 + 100 + 1024) * 1024 ))
src_alloc=$(( $(du -k "$tmp/src.img" | cut -f1) * 1024 ))
info "source: $(( src_alloc / 1024 )) KiB allocated of $size bytes"

start_nbdkit_migrate "$tmp/src.img"
start_stm_recv --output "$tmp/dst.img" --insecure --once
t0=$(date +%s)
run_stm_send send 60 --insecure
t1=$(date +%s)
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS"
wait_recv_once_done
info "migrated in $(( t1 - t0 )) s"

[ "$(stat -c %s "$tmp/dst.img")" -eq "$size" ] || fail "the destination has the wrong size"
# qemu-img compares holes without reading them; it fails on any difference.
qemu-img compare -f raw -F raw "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the source"
alloc_kib="$(du -k "$tmp/dst.img" | cut -f1)"
info "destination: $alloc_kib KiB allocated"
# The data is about 5.1 MiB; blocks of 64K round it up a little.  The
# allocated zeroes must have become a hole too.
[ "$alloc_kib" -le $(( 8 * 1024 )) ] ||
    fail "the destination holds $alloc_kib KiB: the holes were written, not punched"
# Reading 16 GiB through NBD and checking it for zeroes takes well over
# ten seconds here; skipping the holes takes about one.
[ $(( t1 - t0 )) -le 6 ] || fail "the migration took $(( t1 - t0 )) s: were the holes read?"

copied="$(json_field "$tmp/send.out" done bytes_copied)"
zeroed="$(json_field "$tmp/send.out" done bytes_zeroed)"
sent="$(json_field "$tmp/send.out" done bytes_sent)"
wire="$(json_field "$tmp/send.out" done wire_bytes)"
info "counts: copied $copied, zeroed $zeroed, sent $sent, wire $wire"
[ -n "$copied" ] && [ -n "$zeroed" ] && [ -n "$sent" ] && [ -n "$wire" ] ||
    fail "the summary lacks a count: $(tail -n 1 "$tmp/send.out")"
[ "$copied" -ge "$data" ] && [ "$copied" -le "$src_alloc" ] ||
    fail "bytes_copied=$copied: not between the data written ($data) and the allocation ($src_alloc)"
# One pass, nothing written meanwhile: every byte went once, as DATA or ZERO.
[ $(( copied + zeroed )) -eq "$size" ] ||
    fail "bytes_copied + bytes_zeroed = $(( copied + zeroed )), not the image's $size bytes"
# No compression: all that was copied was sent.
[ "$sent" -eq "$copied" ] || fail "bytes_sent=$sent differs from bytes_copied=$copied"
# The holes cost a few bytes a ZERO message, not their length.
[ "$wire" -gt "$sent" ] && [ "$wire" -le $(( sent + 1024 * 1024 )) ] ||
    fail "wire_bytes=$wire: not a little more than bytes_sent=$sent"
info "PASS"
