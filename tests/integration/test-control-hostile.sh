#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: hostile clients of the migrate filter's control
# socket.  Binary garbage, a megabyte-long line, NUL bytes, numbers that
# overflow 64 bits and extents that wrap around or leave the image are all
# answered with ERR, one reply per request; more connections than the
# filter serves are refused with ERR EMFILE without disturbing the others;
# a client that floods requests and never reads the replies neither grows
# the filter's memory nor delays another client.  Through all of it the
# filter's state (STATUS) does not change.  test-control-garbage.sh covers
# the well-formed but wrong requests; this one covers the bytes no client
# should ever send.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires perl -e 1
requires qemu-io --version

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
start_source "$size_mib" migrate-block=64K
nbd_touch

before="$(ctl STATUS | head -n 1)"
info "STATUS before: $before"
case "$before" in
    "OK "*"size=$size "*"state=tracking"*) ;;
    *) fail "unexpected STATUS reply: $before" ;;
esac

# raw_session NAME: send $tmp/NAME.in as it is on one connection, close
# our side, and collect every reply in $tmp/NAME.out (at most 30 s).
raw_session ()
{
    local name="$1"
    run_bounded 30 "$name" \
        sh -c 'exec socat -t 5 - "UNIX-CONNECT:$1" <"$2"' \
        raw "$CTL_SOCK" "$tmp/$name.in"
    [ "$EXIT_STATUS" -eq 0 ] || fail "socat for $name ended with status $EXIT_STATUS"
}

# all_err NAME: every reply line in $tmp/NAME.out is an ERR.
all_err ()
{
    local name="$1" bad
    bad="$(grep -cv '^ERR E[0-9A-Z_]* ' "$tmp/$name.out" || true)"
    [ "$bad" -eq 0 ] ||
        fail "$name: $bad replies are not ERR: $(grep -v '^ERR E' "$tmp/$name.out" | head -n 3)"
}

# 1. 256 KiB of random bytes (a fixed seed, so a failure can be replayed).
perl -e 'srand (5); print map { chr int rand 256 } 1 .. 262144' >"$tmp/random.in"
raw_session random
# One reply per line, the last line being the bytes after the last newline
# (the filter takes them as a line when the client closes).
lines="$(tr -cd '\n' <"$tmp/random.in" | wc -c)"
[ "$(tail -c 1 "$tmp/random.in" | od -An -c | tr -d ' ')" = '\n' ] || lines=$(( lines + 1 ))
replies="$(wc -l <"$tmp/random.out")"
info "random bytes: $lines lines, $replies replies"
[ "$replies" -eq "$lines" ] ||
    fail "$lines lines of random bytes got $replies replies"
all_err random

# 2. A line of 1 MiB with no newline until its end, then STATUS on the same
# connection: one E2BIG for the whole line, then a normal answer.
{ head -c 1048576 /dev/zero | tr '\0' 'A'; printf '\nSTATUS\n'; } >"$tmp/long.in"
raw_session long
[ "$(wc -l <"$tmp/long.out")" -eq 2 ] ||
    fail "a 1 MiB line and STATUS got $(wc -l <"$tmp/long.out") replies, not 2: $(cut -c1-80 "$tmp/long.out")"
sed -n 1p "$tmp/long.out" | grep -q '^ERR E2BIG ' ||
    fail "the 1 MiB line was answered '$(sed -n 1p "$tmp/long.out" | cut -c1-80)'"
sed -n 2p "$tmp/long.out" | grep -q '^OK .*state=tracking' ||
    fail "STATUS after the 1 MiB line was answered '$(sed -n 2p "$tmp/long.out" | cut -c1-80)'"

# 3. NUL bytes, control characters, overflowing numbers, wrapping and
# out-of-range extents, an over-long URI: one ERR each, in order.
uri="nbd://127.0.0.1/$(head -c 3000 /dev/zero | tr '\0' x)"
requests=(
    'STATUS\0'
    'STA\0TUS'
    'CONFIRM 0\0 65536'
    'CONFIRM 0 65536\0'
    'THAW\033[2J'
    'CONFIRM 18446744073709551615 1'
    'CONFIRM 18446744073709486080 131072'
    'CONFIRM 65536 18446744073709551615'
    'CONFIRM 18446744073709551616 65536'
    'CONFIRM 0 18446744073709551616'
    "CONFIRM $size 65536"
    "CONFIRM $(( size - 65536 )) 131072"
    'CONFIRM +0 65536'
    'CONFIRM 0x0 65536'
    'THROTTLE 18446744073709551616'
    'THROTTLE 1e9'
    "FLIP forward $uri"
    'FLIP forward nbd://127.0.0.1/\001'
    'FLIP fence extra'
    'FREEZE now'
)
: >"$tmp/mixed.in"
for r in "${requests[@]}"; do
    printf "${r//%/%%}\\n" >>"$tmp/mixed.in"
done
raw_session mixed
[ "$(wc -l <"$tmp/mixed.out")" -eq "${#requests[@]}" ] ||
    fail "${#requests[@]} bad requests got $(wc -l <"$tmp/mixed.out") replies"
all_err mixed
info "${#requests[@]} malformed requests: ${#requests[@]} ERR replies"

after="$(ctl STATUS | head -n 1)"
[ "$after" = "$before" ] ||
    fail "STATUS changed after hostile input: before '$before', after '$after'"

# 4. More connections than the filter serves.  Idle connections hold every
# slot; one more is told EMFILE and closed; freeing a slot lets it in.
max=16      # CONTROL_MAX_CONNECTIONS in nbdkit-plugin/control_server.h
for (( i = 0; i < max; i++ )); do
    ctl_open "idle$i"
    # A reply proves that the filter has given this connection a slot.
    r="$(ctl_send "idle$i" STATUS | head -n 1)"
    case "$r" in
        "OK "*) ;;
        *) fail "control connection $(( i + 1 )) of $max was answered '$r'" ;;
    esac
done
# The extra connection only listens: the filter answers and closes at
# once, and a request written after that close would fail with EPIPE and
# could make socat quit before it has read the answer.
run_bounded 10 over socat -u "UNIX-CONNECT:$CTL_SOCK" STDOUT
r="$(head -n 1 "$tmp/over.out")"
case "$r" in
    "ERR EMFILE"*) ;;
    *) fail "connection $(( max + 1 )) was answered '$r', not ERR EMFILE" ;;
esac
r="$(ctl_send idle0 STATUS | head -n 1)"
case "$r" in
    "OK "*) ;;
    *) fail "an established connection stopped working after a refusal: '$r'" ;;
esac
for (( i = 0; i < max; i++ )); do
    ctl_close "idle$i"
done
one_free () { ctl STATUS | grep -q '^OK '; }
wait_for 10 "a control slot to be free again" one_free

# 5. A client that sends requests without end and never reads a reply.
# Its socat writes the replies into a FIFO that nobody reads, so it stops
# reading the socket and the filter's output to it backs up.
rss_kib () { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
nbdkit_pid="$(cat "$tmp/nbdkit.pid")"
rss_before="$(rss_kib "$nbdkit_pid")"
mkfifo "$tmp/flood.fifo"
exec {hold}<>"$tmp/flood.fifo"
_stm_ctl_fds+=("$hold")
spawn /dev/null "$tmp/flood.err" \
      sh -c 'yes STATUS | socat - "UNIX-CONNECT:$1" >"$2"' \
      flood "$CTL_SOCK" "$tmp/flood.fifo"
flood_pid=$SPAWNED_PID
sleep 3
alive "$flood_pid" || fail "the flooding client ended early (see flood.err)"
start=$(date +%s%N)
r="$(ctl STATUS | head -n 1)"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
case "$r" in
    "OK "*"state=tracking"*) ;;
    *) fail "STATUS during the flood was answered '$r'" ;;
esac
[ "$ms" -lt 5000 ] || fail "STATUS took $ms ms during the flood"
rss_after="$(rss_kib "$nbdkit_pid")"
info "during the flood: STATUS in $ms ms; nbdkit RSS $rss_before KiB -> $rss_after KiB"
[ $(( rss_after - rss_before )) -lt 16384 ] ||
    fail "nbdkit grew by $(( rss_after - rss_before )) KiB under a client that does not read"
kill -TERM -- "-$flood_pid" 2>/dev/null || true
wait_exit "$flood_pid" 10

after="$(ctl STATUS | head -n 1)"
[ "$after" = "$before" ] ||
    fail "STATUS changed: before '$before', after '$after'"
alive "$NBDKIT_PID" || fail "nbdkit is gone"
info "PASS"
