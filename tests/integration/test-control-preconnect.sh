#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: PRECONNECT prepares the connection FLIP forward
# uses, so that the flip has nothing slow left to do while the guest is
# frozen.
#
# By hand on the control socket, against a real nbdkit destination: only
# the owner may PRECONNECT; a destination that is not there, or has the
# wrong size, is refused with the source still tracking; a prepared
# connection carries no guest I/O, survives a called-off cutover (FREEZE,
# THAW) and is closed when its owner's connection closes; FLIP forward to
# the same URI takes it over (preconnected=1) and the guest's reads and
# writes then go to the destination; FLIP forward to another URI, or to a
# destination that closed the prepared connection meanwhile, connects
# afresh (preconnected=0).  A connection prepared to a TLS export behind
# the gate stm-recv --export puts before it works once the gate opens.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires nbdkit --version
requires ss --version

size_mib=8
size=$(( size_mib * 1024 * 1024 ))

# start_dest NAME IMAGE: a plain nbdkit serving IMAGE on $tmp/NAME.sock.
start_dest ()
{
    local name="$1" image="$2" i
    rm -f "$tmp/$name.sock"
    spawn "$tmp/$name.log" "$tmp/$name.err" \
          nbdkit -f -U "$tmp/$name.sock" file file="$image"
    printf -v "DEST_PID_$name" %s "$SPAWNED_PID"
    for (( i = 0; i < 100; i++ )); do
        [ -S "$tmp/$name.sock" ] && return 0
        sleep 0.1
    done
    fail "the destination $name did not create its socket"
}

# kill_dest NAME: the destination dies (SIGKILL: a plain nbdkit waits for
# its idle clients on SIGTERM, and a dead one is the case here).
kill_dest ()
{
    local pidvar="DEST_PID_$1"
    kill -KILL "${!pidvar}" 2>/dev/null || true
    wait_exit "${!pidvar}" 10
}

dest_uri () { echo "nbd+unix:///?socket=$tmp/$1.sock"; }

# dest_connections NAME: connections open to the destination NAME (its
# accepted sockets carry the socket's path as their local address).
dest_connections () { ss -Hx | grep -cF "$tmp/$1.sock " || true; }
dest_connections_are () { [ "$(dest_connections "$1")" = "$2" ]; }

# preconnect_is STATE: does STATUS report the prepared connection so?
preconnect_is () { [ "$(status_field preconnect)" = "$1" ]; }

# expect REPLY PATTERN WHAT: fail unless REPLY matches the glob PATTERN.
expect ()
{
    # shellcheck disable=SC2254
    case "$1" in $2) ;; *) fail "$3 answered '$1'" ;; esac
}

# pattern_at FILE OFFSET BYTE: does FILE hold 64k of BYTE (octal escape
# for tr) at OFFSET?
pattern_at ()
{
    cmp -s -n 65536 -i "$2:0" "$1" <(head -c 65536 /dev/zero | tr '\0' "$3")
}

# clean_and_freeze NAME: on the owning connection NAME, hand out every
# block, confirm them all and freeze: what a sender does before a flip.
clean_and_freeze ()
{
    local r
    r="$(ctl_send "$1" SNAPSHOT | head -n 1)"
    expect "$r" "OK generation=*" SNAPSHOT
    r="$(ctl_send "$1" "CONFIRM 0 $size")"
    expect "$r" "OK confirmed=$size" CONFIRM
    r="$(ctl_send "$1" FREEZE)"
    expect "$r" "OK frozen*" FREEZE
}

make_random_image "$tmp/src.img" "$size_mib"
cp "$tmp/src.img" "$tmp/dst.img"
cp "$tmp/src.img" "$tmp/other.img"
truncate -s 1M "$tmp/small.img"
start_dest dst "$tmp/dst.img"
start_dest small "$tmp/small.img"
DST="$(dest_uri dst)"

# A destination that accepts TCP connections and never says a word.
spawn "$tmp/silent.out" "$tmp/silent.err" python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
time.sleep(600)'
wait_for 10 "the silent destination to listen" test -s "$tmp/silent.out"
SILENT="nbd://127.0.0.1:$(head -n 1 "$tmp/silent.out")/"

# --- 1. Only the owner may PRECONNECT.  (A short freeze timeout, which
# bounds PRECONNECT's wait as well.)
NBDKIT_OPTIONS=-v start_nbdkit_migrate "$tmp/src.img" migrate-freeze-timeout=5s
nbd_touch
r="$(ctl "PRECONNECT $DST")"
expect "$r" "ERR EPERM *" "PRECONNECT while nobody owns the migration"
ctl_open owner
r="$(ctl_send owner RESET)"
expect "$r" "OK dirty_blocks=*" RESET
r="$(ctl "PRECONNECT $DST")"
expect "$r" "ERR EBUSY *" "PRECONNECT from a connection that is not the owner"
dest_connections_are dst 0 || fail "a refused PRECONNECT connected to the destination"
info "case 1: PRECONNECT refused to non-owners"

# --- 2. A destination that is not there, or has another size: ERR, and
# the source keeps tracking (and owning: the owner may go on).
r="$(ctl_send owner "PRECONNECT nbd+unix:///?socket=$tmp/nobody.sock")"
expect "$r" "ERR EHOSTUNREACH *nobody.sock*the source keeps tracking" \
       "PRECONNECT to a socket nobody listens on"
r="$(ctl_send owner "PRECONNECT nbd://127.0.0.1:1/")"
expect "$r" "ERR EHOSTUNREACH *" "PRECONNECT to a closed TCP port"
r="$(ctl_send owner "PRECONNECT $(dest_uri small)")"
expect "$r" "ERR EHOSTUNREACH *1048576 bytes, not the $size*" \
       "PRECONNECT to an export of another size"
state_is tracking || fail "not tracking after failed PRECONNECTs: $(ctl STATUS)"
[ "$(status_field preconnect)" = none ] ||
    fail "STATUS reports a prepared connection after failed PRECONNECTs: $(ctl STATUS)"
wait_for 10 "the refused connection to the small export to close" \
         dest_connections_are small 0
t0="$(date +%s%N)"
r="$(ctl_send owner "PRECONNECT $SILENT")"
t1="$(date +%s%N)"
expect "$r" "ERR EHOSTUNREACH *no connection within the 5000 ms of migrate-freeze-timeout*" \
       "PRECONNECT to a destination that never answers"
[ $(( (t1 - t0) / 1000000 )) -lt 9000 ] ||
    fail "PRECONNECT to a silent destination took $(( (t1 - t0) / 1000000 )) ms"
nbd_write 0 64k 0x21 || fail "a write after a failed PRECONNECT did not complete"
pattern_at "$tmp/src.img" 0 '\041' || fail "the write did not reach the source"
info "case 2: failed PRECONNECTs leave the source tracking"

# --- 2b. While PRECONNECT waits for a silent destination, other control
# connections and the guest are served; its owner's close calls it off.
before="$(wc -l < "$tmp/ctl-owner.out")"
# shellcheck disable=SC2154 # ctl_open sets it
printf 'PRECONNECT %s\n' "$SILENT" >&"$_ctl_fd_owner"
wait_for 3 "STATUS to say connecting" preconnect_is connecting
nbd_write 64k 64k 0x26 || fail "a write during a PRECONNECT did not complete"
ctl_close owner
wait_for 3 "the owner's close to call PRECONNECT off" preconnect_is none
[ "$(wc -l < "$tmp/ctl-owner.out")" = "$before" ] ||
    fail "the PRECONNECT its owner left was answered (too late?): $(tail -n 1 "$tmp/ctl-owner.out")"
grep -q "the connection prepared for $SILENT is closed: the owning control connection closed" "$tmp/nbdkit.err" ||
    fail "the filter did not log that the owner's close called PRECONNECT off"
ctl_open owner2
r="$(ctl_send owner2 RESUME)"
expect "$r" "OK dirty_blocks=*" RESUME
info "case 2b: PRECONNECT blocks neither STATUS nor the guest, and goes with its owner"

# --- 3. A prepared connection carries no guest I/O, survives FREEZE and
# THAW, answers a second PRECONNECT at once, and goes with its owner.
r="$(ctl_send owner2 "PRECONNECT $DST")"
expect "$r" "OK preconnected connect_us=* handles=*" "PRECONNECT $DST"
info "PRECONNECT -> $r"
handles="${r##*handles=}"
[ "$(status_field preconnect)" = ready ] || fail "STATUS: $(ctl STATUS)"
dest_connections_are dst "$handles" ||
    fail "the destination has $(dest_connections dst) connections, not $handles"
nbd_write 1M 64k 0x22 || fail "a write with a prepared connection failed"
pattern_at "$tmp/src.img" 1048576 '\042' || fail "the write did not reach the source"
pattern_at "$tmp/dst.img" 1048576 '\042' && fail "the write reached the destination before any FLIP"
r="$(ctl_send owner2 FREEZE)"
expect "$r" "OK frozen*" FREEZE
r="$(ctl_send owner2 THAW)"
expect "$r" "OK thawed*" THAW
[ "$(status_field preconnect)" = ready ] ||
    fail "the prepared connection did not survive FREEZE and THAW: $(ctl STATUS)"
r="$(ctl_send owner2 "PRECONNECT $DST")"
expect "$r" "OK preconnected connect_us=* handles=$handles" "a second PRECONNECT $DST"
dest_connections_are dst "$handles" || fail "a second PRECONNECT opened more connections"
ctl_close owner2
wait_for 10 "the prepared connection to close with its owner" dest_connections_are dst 0
[ "$(status_field preconnect)" = none ] || fail "STATUS after the owner closed: $(ctl STATUS)"
info "case 3: prepared, unused by the guest, kept across a thaw, dropped with its owner"

# --- 4. RESET drops it; FLIP forward to the same URI takes it over.
ctl_open owner4
r="$(ctl_send owner4 RESUME)"
expect "$r" "OK dirty_blocks=*" RESUME
r="$(ctl_send owner4 "PRECONNECT $DST")"
expect "$r" "OK preconnected*" "PRECONNECT by a new owner"
r="$(ctl_send owner4 RESET)"
wait_for 10 "RESET to close the prepared connection" dest_connections_are dst 0
r="$(ctl_send owner4 "PRECONNECT $DST")"
expect "$r" "OK preconnected*" "PRECONNECT after RESET"
clean_and_freeze owner4
r="$(ctl_send owner4 "FLIP forward $DST")"
expect "$r" "OK forwarding handles=$handles preconnected=1" "FLIP forward to the prepared URI"
info "FLIP forward -> $r"
state_is forwarding || fail "not forwarding after the flip: $(ctl STATUS)"
[ "$(status_field preconnect)" = none ] || fail "STATUS after the flip: $(ctl STATUS)"
dest_connections_are dst "$handles" || fail "the flip opened connections of its own"
cp "$tmp/src.img" "$tmp/src-at-flip.img"
nbd_write 2M 64k 0x23 || fail "a write through the forwarding source failed"
pattern_at "$tmp/dst.img" 2097152 '\043' || fail "the write after the flip is not in the destination"
cmp -s "$tmp/src.img" "$tmp/src-at-flip.img" || fail "a write after the flip changed the source"
# A read goes to the destination too: change it there behind the source.
printf '\x5a%.0s' $(seq 65536) | dd of="$tmp/dst.img" bs=64k seek=48 conv=notrunc status=none
run_bounded 30 qemu-io qemu-io -f raw -r -c "read -P 0x5a 3M 64k" "$NBD_URI"
if [ "$EXIT_STATUS" -ne 0 ] || grep -Eqi 'fail|error' "$tmp/qemu-io.out"; then
    fail "a read through the forwarding source did not come from the destination"
fi
r="$(ctl_send owner4 "PRECONNECT $DST")"
expect "$r" "ERR EPERM *" "PRECONNECT after the flip"
ctl_close owner4
stop_nbdkit
wait_for 10 "the forwarded connections to close" dest_connections_are dst 0
info "case 4: the flip took the prepared connection; I/O goes to the destination"

# --- 5. FLIP forward to another URI than the prepared one connects afresh.
start_dest other "$tmp/other.img"
start_nbdkit_migrate "$tmp/src.img"
nbd_touch
ctl_open owner5
r="$(ctl_send owner5 RESET)"
r="$(ctl_send owner5 "PRECONNECT $DST")"
expect "$r" "OK preconnected*" "PRECONNECT $DST"
clean_and_freeze owner5
r="$(ctl_send owner5 "FLIP forward $(dest_uri other)")"
expect "$r" "OK forwarding handles=* preconnected=0" "FLIP forward to another URI"
wait_for 10 "the unused prepared connection to close" dest_connections_are dst 0
nbd_write 1M 64k 0x24 || fail "a write through the forwarding source failed"
pattern_at "$tmp/other.img" 1048576 '\044' || fail "the write is not in the flip's destination"
pattern_at "$tmp/dst.img" 1048576 '\044' && fail "the write went to the prepared destination"
ctl_close owner5
stop_nbdkit
info "case 5: FLIP forward to another URI connected afresh"

# --- 6. A prepared connection to a destination that died since (and was
# restarted at the same address) is not used.
start_nbdkit_migrate "$tmp/src.img"
nbd_touch
ctl_open owner6
r="$(ctl_send owner6 RESET)"
r="$(ctl_send owner6 "PRECONNECT $DST")"
expect "$r" "OK preconnected*" "PRECONNECT $DST"
kill_dest dst
start_dest dst "$tmp/dst.img"
clean_and_freeze owner6
r="$(ctl_send owner6 "FLIP forward $DST")"
expect "$r" "OK forwarding handles=* preconnected=0" \
       "FLIP forward after the destination restarted"
nbd_write 4M 64k 0x25 || fail "a write through the forwarding source failed"
pattern_at "$tmp/dst.img" 4194304 '\045' || fail "the write is not in the destination"
ctl_close owner6
stop_nbdkit
info "case 6: a prepared connection the destination closed was replaced"

# --- 7. The destination as stm-recv --export starts it (receiver/export.c):
# nbdkit over TLS with a PSK, behind the error filter's gate, which fails
# every data request while the gate file exists.  A connection prepared
# while the gate is closed (the NBD handshake passes the error filter)
# carries the guest's I/O once the gate file is removed.
if command -v psktool >/dev/null 2>&1; then
    make_psk "$tmp/keys.psk"
    cp "$tmp/src.img" "$tmp/gated.img"
    : > "$tmp/gate"
    gated_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    spawn "$tmp/gated.log" "$tmp/gated.err" \
          nbdkit -f -i 127.0.0.1 -p "$gated_port" --tls=require --tls-psk="$tmp/keys.psk" \
          --filter=error file file="$tmp/gated.img" \
          error=EPERM error-rate=100% error-file="$tmp/gate"
    wait_for 10 "the gated destination to listen" \
             eval "ss -Hltn 'sport = :$gated_port' | grep -q LISTEN"
    GATED="nbds://stm@127.0.0.1:$gated_port/?tls-psk-file=$tmp/keys.psk"
    start_nbdkit_migrate "$tmp/src.img"
    nbd_touch
    ctl_open owner7
    r="$(ctl_send owner7 RESET)"
    r="$(ctl_send owner7 "PRECONNECT $GATED")"
    expect "$r" "OK preconnected connect_us=*" "PRECONNECT to the gated export"
    info "PRECONNECT (TLS PSK, gate closed) -> $r"
    clean_and_freeze owner7
    rm -f "$tmp/gate"
    r="$(ctl_send owner7 "FLIP forward $GATED")"
    expect "$r" "OK forwarding handles=* preconnected=1" "FLIP forward to the gated export"
    nbd_write 5M 64k 0x27 || fail "a write through the flip to the opened export failed"
    pattern_at "$tmp/gated.img" 5242880 '\047' || fail "the write is not in the gated export's image"
    ctl_close owner7
    stop_nbdkit
    info "case 7: prepared behind the closed gate, used once it opened"
else
    info "case 7 skipped: psktool is not installed"
fi
info "PASS"
