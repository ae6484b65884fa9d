#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a live migration over TLS (PSK) while a guest
# stand-in (fio, 4k random writes, iodepth 8) writes to the source.  The
# destination must equal the fenced source file byte for byte, stm-send
# must exit 0 and its JSON summary must add up, and the source must be
# fenced (further I/O fails).

source ./functions.sh
set -eu
requires_psk_migration

size_mib=128
size=$(( size_mib * 1024 * 1024 ))
start_psk_source "$size_mib"
cp "$tmp/src.img" "$tmp/orig.img"
start_writer_and_wait "${size_mib}m" 120 0 --rate=,4m
writes_before="$(status_writes)"

migrate_psk_once 180 --max-passes 10

state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
writes_after="$(status_writes)"
info "guest writes during the migration: $(( writes_after - writes_before ))"
[ "$writes_after" -gt "$writes_before" ] ||
    fail "no guest write reached the source during the migration"
# Once fenced, the guest's I/O fails: fio stops with an error.
wait_exit "$WRITER_PID" 30
info "fio exited with status $EXIT_STATUS (an error is expected after the fence)"
if nbd_write 0 4k 0x77; then
    fail "a write to the fenced source succeeded"
fi

cmp -s "$tmp/src.img" "$tmp/orig.img" &&
    fail "the source file never changed: the writer did not write"
cmp "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the fenced source"
info "destination identical to the fenced source"

# The JSON stream: one object per line, ending with the summary.
out="$tmp/send.out"
[ -s "$out" ] || fail "stm-send --json printed nothing"
if grep -v '^{.*}$' "$out" | grep -q .; then
    fail "stm-send --json printed a line that is not a JSON object"
fi
for ev in start pass_begin pass_end freeze commit flip done; do
    grep -q "\"event\":\"$ev\"" "$out" || fail "no $ev event in the JSON output"
done
last="$(tail -n 1 "$out")"
case "$last" in *'"event":"done"'*) ;; *) fail "the last JSON line is not the summary: $last" ;; esac
passes="$(json_field "$out" done passes)"
bytes_sent="$(json_field "$out" done bytes_sent)"
downtime_ms="$(json_field "$out" done downtime_ms)"
seconds="$(json_field "$out" done seconds)"
info "summary: passes=$passes bytes_sent=$bytes_sent downtime_ms=$downtime_ms seconds=$seconds"
[ -n "$passes" ] && [ -n "$bytes_sent" ] && [ -n "$downtime_ms" ] && [ -n "$seconds" ] ||
    fail "the summary lacks a field: $last"
[ "$passes" -ge 1 ] && [ "$passes" -le 10 ] || fail "passes=$passes is not in 1..10 (--max-passes 10)"
[ "$bytes_sent" -ge "$size" ] || fail "bytes_sent=$bytes_sent is less than the image size $size"
# Sent at most every pass in full (10 passes, the final one included).
[ "$bytes_sent" -le $(( size * 10 + 64 * 1024 * 1024 )) ] ||
    fail "bytes_sent=$bytes_sent is more than every pass in full"
downtime_int="${downtime_ms%%.*}"
[ "$downtime_int" -lt 60000 ] || fail "downtime_ms=$downtime_ms is not sane"
info "PASS"
