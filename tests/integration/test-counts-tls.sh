#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the byte counts of a TLS migration.  A 128 MiB
# image of random bytes (no zeroes to skip, nothing writing to it)
# migrates over TLS (PSK): every byte is copied once and sent as it was
# (no compression), nothing is zeroed, and the wire carried a little more
# than the payload (frame headers, the handshake, TLS record headers and
# tags), within 2%.  stm-recv's summary must agree: the payload it
# received is what stm-send copied, and the bytes it read from its socket
# are about what stm-send wrote.  Progress events carry the counts as
# they grow.

source ./functions.sh
set -eu
requires_built
requires psktool --version

size_mib=128
size=$(( size_mib * 1024 * 1024 ))
start_psk_source "$size_mib"
migrate_psk_once 120

cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the source"

out="$tmp/send.out"
copied="$(json_field "$out" done bytes_copied)"
zeroed="$(json_field "$out" done bytes_zeroed)"
sent="$(json_field "$out" done bytes_sent)"
wire="$(json_field "$out" done wire_bytes)"
info "stm-send: copied $copied, zeroed $zeroed, sent $sent, wire $wire"
[ -n "$copied" ] && [ -n "$zeroed" ] && [ -n "$sent" ] && [ -n "$wire" ] ||
    fail "the summary lacks a count: $(tail -n 1 "$out")"
[ "$copied" -eq "$size" ] || fail "bytes_copied=$copied, not the image's $size bytes"
[ "$zeroed" -eq 0 ] || fail "bytes_zeroed=$zeroed for an image of random bytes"
[ "$sent" -eq "$copied" ] || fail "bytes_sent=$sent differs from bytes_copied=$copied"
[ "$wire" -gt "$sent" ] || fail "wire_bytes=$wire is not more than bytes_sent=$sent under TLS"
[ "$wire" -le $(( sent + sent / 50 )) ] ||
    fail "wire_bytes=$wire is more than 2% over bytes_sent=$sent"
info "overhead on the wire: $(( wire - sent )) bytes"

# The last progress event carries the four counts, no more than the summary.
p_copied="$(json_field "$out" progress bytes_copied)"
p_wire="$(json_field "$out" progress wire_bytes)"
[ -n "$p_copied" ] && [ -n "$p_wire" ] ||
    fail "the progress events lack the counts: $(grep '"event":"progress"' "$out" | tail -n 1)"
[ "$p_copied" -le "$copied" ] && [ "$p_wire" -le "$wire" ] ||
    fail "a progress event counted more (copied $p_copied, wire $p_wire) than the summary"
grep '"event":"pass_end"' "$out" | grep -q '"wire_bytes":' ||
    fail "the pass_end events lack wire_bytes"

r_received="$(json_field "$tmp/recv.out" done bytes_received)"
r_zeroed="$(json_field "$tmp/recv.out" done bytes_zeroed)"
r_wire="$(json_field "$tmp/recv.out" done wire_bytes)"
info "stm-recv: received $r_received, zeroed $r_zeroed, wire $r_wire"
[ "$r_received" = "$copied" ] && [ "$r_zeroed" = "$zeroed" ] ||
    fail "stm-recv received $r_received and zeroed $r_zeroed; stm-send copied $copied and zeroed $zeroed"
# stm-recv's summary comes before the reply that ends stm-send's run, so
# the two may differ by the last messages; not by more.
diff=$(( r_wire > wire ? r_wire - wire : wire - r_wire ))
[ "$diff" -le 65536 ] ||
    fail "stm-recv read $r_wire bytes from its socket, stm-send wrote $wire"
info "PASS"
