#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-send --compare-only.  After a migration, the
# pair is identical (exit 0, no difference); one byte flipped at a random
# offset of the destination is exactly one difference whose range holds
# that offset (exit 1); a destination of another size is refused with a
# clear message.  Neither the destination image nor its state file
# changes.  A live source (the filter, --control) written to during the
# comparison, against a copy taken before the writes, is identical once
# the written blocks are left out, and differs without --control; a
# filter another connection owns is refused.  A group of two named disks
# finds the one flipped byte on the right disk.

source ./functions.sh
set -eu
requires_psk_migration
requires sha256sum --version
requires od --version

size_mib=64
size=$(( size_mib * 1024 * 1024 ))

# compare NAME SECONDS ARGS...: stm-send --compare-only to the receiver
# ($RECV_PORT) with the key, JSON and ARGS; output in $tmp/NAME.out/.err.
compare ()
{
    local name="$1" secs="$2"
    shift 2
    run_bounded "$secs" "$name" "$STM_SEND" --compare-only \
        --dest "127.0.0.1:$RECV_PORT" --tls-psk "$tmp/keys.psk" --json --no-progress "$@"
    info "stm-send --compare-only ($name) exited with status $EXIT_STATUS"
}

# serve_plain IMAGE: the plain file plugin (no filter) on $tmp/plain.sock;
# sets PLAIN_URI.
serve_plain ()
{
    rm -f "$tmp/plain.sock"
    spawn "$tmp/nbdkit-plain.log" "$tmp/nbdkit-plain.err" nbdkit -f \
          -U "$tmp/plain.sock" file file="$1"
    PLAIN_PID=$SPAWNED_PID
    PLAIN_URI="nbd+unix:///?socket=$tmp/plain.sock"
    wait_for 30 "the plain nbdkit to listen" test -S "$tmp/plain.sock"
}

stop_recv ()
{
    kill -TERM -- "-$RECV_PID" 2>/dev/null || true
    wait_exit "$RECV_PID" 10
    mv "$tmp/recv.err" "$tmp/recv-$1.log"
    mv "$tmp/recv.out" "$tmp/recv-$1.json"
}

# flip_byte FILE OFFSET: invert the byte at OFFSET of FILE.
flip_byte ()
{
    local b
    b="$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')"
    printf "\\$(printf %03o $(( b ^ 255 )))" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# differences FILE: the number of difference events in FILE.
differences () { grep -c '"event":"difference"' "$1" || true; }

# one_difference_holds FILE OFFSET [DISK]: FILE has exactly one difference
# event, and its range (of disk DISK, when given) holds OFFSET.
one_difference_holds ()
{
    local file="$1" x="$2" line off len
    [ "$(differences "$file")" -eq 1 ] ||
        fail "$file: $(differences "$file") difference events, expected exactly one"
    line="$(grep '"event":"difference"' "$file")"
    off="$(sed -n 's/.*"offset":\([0-9]*\).*/\1/p' <<< "$line")"
    len="$(sed -n 's/.*"length":\([0-9]*\).*/\1/p' <<< "$line")"
    [ "$off" -le "$x" ] && [ "$x" -lt $(( off + len )) ] ||
        fail "$file: the difference [$off, +$len) does not hold offset $x"
    if [ $# -gt 2 ]; then
        grep -q "\"disk\":\"$3\"" <<< "$line" || fail "$file: the difference is not on disk $3: $line"
    fi
}

result_is () { grep '"event":"done"' "$1" | grep -q "\"result\":\"$2\""; }

sums () { sha256sum "$tmp/dst.img" "$tmp/dst.img.stm-state"; }

# ---- after a migration ----------------------------------------------
start_psk_source "$size_mib"
migrate_psk_once 120
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the migration is not identical"
[ -s "$tmp/dst.img.stm-state" ] || fail "the receiver left no state file"
stop_nbdkit
mv "$tmp/recv.err" "$tmp/recv-migration.log"
mv "$tmp/recv.out" "$tmp/recv-migration.json"

serve_plain "$tmp/src.img"
start_psk_recv
before="$(sums)"
compare same 60 --source "$PLAIN_URI"
[ "$EXIT_STATUS" -eq 0 ] || fail "an identical pair: exit $EXIT_STATUS, expected 0"
result_is "$tmp/same.out" identical || fail "an identical pair is not called identical"
[ "$(differences "$tmp/same.out")" -eq 0 ] || fail "an identical pair has differences"
grep '"event":"done"' "$tmp/same.out" | grep -q "\"bytes_compared\":$size" ||
    fail "not every byte was compared"
grep '"event":"done"' "$tmp/same.out" | grep -q '"writes_tracked":false' ||
    fail "without --control the summary does not say the source was assumed idle"
# Only hashes cross: both ways, well under 1% of the image.
wire="$(json_field "$tmp/same.out" done wire_bytes)"
wire_in="$(json_field "$tmp/same.out" done wire_bytes_received)"
[ -n "$wire" ] && [ -n "$wire_in" ] || fail "the summary lacks wire_bytes"
[ $(( (wire + wire_in) * 100 )) -lt "$size" ] ||
    fail "$wire + $wire_in bytes on the wire: 1% of the image or more"

x=$(( (RANDOM * 32768 + RANDOM) % size ))
info "flipping the byte at offset $x of the destination"
flip_byte "$tmp/dst.img" "$x"
before="$(sums)"
compare one 60 --source "$PLAIN_URI"
[ "$EXIT_STATUS" -eq 1 ] || fail "one byte differs: exit $EXIT_STATUS, expected 1"
result_is "$tmp/one.out" different || fail "one byte differs, and the result is not different"
one_difference_holds "$tmp/one.out" "$x"
# Without --json, each difference is a line on stderr.
run_bounded 60 one-text "$STM_SEND" --compare-only --source "$PLAIN_URI" \
    --dest "127.0.0.1:$RECV_PORT" --tls-psk "$tmp/keys.psk" --no-progress
[ "$EXIT_STATUS" -eq 1 ] || fail "without --json: exit $EXIT_STATUS, expected 1"
grep -q "differs: offset $(( x / 65536 * 65536 )) length 65536" "$tmp/one-text.err" ||
    fail "without --json, stderr does not say which range differs"
grep -q "different: 1 range" "$tmp/one-text.err" || fail "without --json, no summary line"
[ "$(sums)" = "$before" ] || fail "the comparisons changed the destination or its state file"
flip_byte "$tmp/dst.img" "$x"
stop_recv pair

# ---- a destination of another size ----------------------------------
cp "$tmp/src.img" "$tmp/other.img"
truncate -s $(( size + 65536 )) "$tmp/other.img"
other_before="$(sha256sum "$tmp/other.img")"
start_stm_recv --output "$tmp/other.img" --tls-psk "$tmp/keys.psk" --json --force
compare size 60 --source "$PLAIN_URI"
[ "$EXIT_STATUS" -eq 1 ] || fail "another size: exit $EXIT_STATUS, expected 1"
grep '"event":"error"' "$tmp/size.out" | grep -q "sizes differ" ||
    fail "another size: the error does not say the sizes differ"
[ "$(sha256sum "$tmp/other.img")" = "$other_before" ] || fail "the comparison changed other.img"
[ ! -e "$tmp/other.img.stm-state" ] || fail "the comparison wrote a state file for other.img"
stop_recv size
kill -TERM -- "-$PLAIN_PID"; wait_exit "$PLAIN_PID" 10

# ---- a live source ---------------------------------------------------
start_nbdkit_migrate "$tmp/src.img"
nbd_touch
cp "$tmp/src.img" "$tmp/live.img"
start_stm_recv --output "$tmp/live.img" --tls-psk "$tmp/keys.psk" --json --force
# Slow enough (about 4 s) that the writes fall within the comparison.
spawn "$tmp/live.out" "$tmp/live.err" "$STM_SEND" --compare-only --source "$NBD_URI" \
      --control "$CTL_SOCK" --dest "127.0.0.1:$RECV_PORT" --tls-psk "$tmp/keys.psk" \
      --json --no-progress --rate 16M
live_pid=$SPAWNED_PID
wait_for 30 "the comparison to start" grep -q '"event":"start"' "$tmp/live.out"
written=()
for pat in 0x11 0x22 0x33 0x44; do
    w=$(( ((RANDOM * 32768 + RANDOM) % (size / 4096 - 16)) * 4096 ))
    nbd_write "$w" 8192 "$pat" || fail "cannot write at $w through the filter"
    written+=("$w")
done
info "the guest wrote 8 KiB at ${written[*]}"
wait_exit "$live_pid" 60
[ "$EXIT_STATUS" -eq 0 ] || fail "a live source: exit $EXIT_STATUS, expected 0 (the writes left out)"
result_is "$tmp/live.out" identical || fail "a live source is not identical with the writes left out"
[ "$(differences "$tmp/live.out")" -eq 0 ] || fail "a live source has differences outside the writes"
changed="$(json_field "$tmp/live.out" done bytes_changed_during)"
[ "${changed:-0}" -gt 0 ] || fail "no bytes were counted as changed during the comparison"
info "changed during the comparison: $changed bytes"
# Without --control the same pair differs, and only where the guest wrote.
compare idle 60 --source "$NBD_URI"
[ "$EXIT_STATUS" -eq 1 ] || fail "without --control: exit $EXIT_STATUS, expected 1"
while read -r off len; do
    hit=
    for w in "${written[@]}"; do
        [ "$off" -le "$w" ] && [ "$w" -lt $(( off + len )) ] && hit=1
    done
    [ -n "$hit" ] || fail "a difference at [$off, +$len) lies where the guest did not write"
done < <(grep '"event":"difference"' "$tmp/idle.out" |
         sed -n 's/.*"offset":\([0-9]*\),"length":\([0-9]*\).*/\1 \2/p')
[ "$(differences "$tmp/idle.out")" -ge 1 ] || fail "without --control nothing differs"
# The comparison leaves the filter owned by nobody, tracking.
[ "$(status_field owner)" = none ] || fail "the filter is still owned after the comparison"
state_is tracking || fail "the filter is not tracking after the comparison"
# A filter another connection owns (a running migration's) is refused.
ctl_open owner
ctl_send owner SNAPSHOT >/dev/null || fail "cannot take ownership of the filter"
compare owned 60 --source "$NBD_URI" --control "$CTL_SOCK"
[ "$EXIT_STATUS" -eq 1 ] || fail "an owned filter: exit $EXIT_STATUS, expected 1"
grep -q "owned by another control connection" "$tmp/owned.err" ||
    fail "an owned filter: the message does not say so"
ctl_close owner
stop_recv live
stop_nbdkit

# ---- a group of two disks ---------------------------------------------
start_disk a 16
start_disk b 24
cp "$tmp/a-src.img" "$tmp/a-dst.img"
cp "$tmp/b-src.img" "$tmp/b-dst.img"
xb=$(( (RANDOM * 32768 + RANDOM) % (24 * 1024 * 1024) ))
flip_byte "$tmp/b-dst.img" "$xb"
CTL_SOCK="$(disk_ctl a)" NBD_URI="$(disk_uri a)" nbd_touch
CTL_SOCK="$(disk_ctl b)" NBD_URI="$(disk_uri b)" nbd_touch
start_stm_recv --output "a=$tmp/a-dst.img" --output "b=$tmp/b-dst.img" \
    --tls-psk "$tmp/keys.psk" --json --force
run_group_send group 60 a b -- --compare-only --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 1 ] || fail "a group with one byte flipped: exit $EXIT_STATUS, expected 1"
one_difference_holds "$tmp/group.out" "$xb" b
flip_byte "$tmp/b-dst.img" "$xb"
run_group_send group-same 60 a b -- --compare-only --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "an identical group: exit $EXIT_STATUS, expected 0"
stop_recv group

# ---- usage ------------------------------------------------------------
run_bounded 10 usage "$STM_SEND" --compare-only --source "$(disk_uri a)" \
    --dest 127.0.0.1:1 --insecure --flip fence
[ "$EXIT_STATUS" -eq 2 ] || fail "--compare-only --flip: exit $EXIT_STATUS, expected 2"
grep -q -- "--flip cannot be used with --compare-only" "$tmp/usage.err" ||
    fail "--compare-only --flip: the message does not say why"
run_bounded 10 usage2 "$STM_SEND" --compare-only --dest 127.0.0.1:1 --insecure \
    --disk "$(disk_arg a)" --disk "name=b,source=$(disk_uri b)"
[ "$EXIT_STATUS" -eq 2 ] || fail "control= for one disk of two: exit $EXIT_STATUS, expected 2"
info "PASS"
