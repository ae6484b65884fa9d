#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the commands of docs/migrating-a-vm.md, and the
# README's group example, run as the documents write them.
#
# The commands are taken from the documents' code blocks (continuation
# lines joined, comments after '#' dropped), not copied here, so that a
# document that drifts from what the programs accept fails this test.
# Only the places change: /run/stm, /var/lib/disks and /srv/disks become
# directories under $tmp, the hosts and ports 127.0.0.1 and free ports,
# keys.psk the test's key, and --filter=migrate the filter just built.
# nbdkit runs daemonized, as written (no -f).
#
# The guide: two disks served by daemonized nbdkit with the filter,
# written to by fio; one stm-recv --output sys=... --output data=...
# --export; one stm-send --disk ... --disk ... --flip forward --cutover
# manual --command-socket; the guide's socat STATUS until ready=1, then
# (writers stopped) its socat CUTOVER, answered "OK flipped ...";
# stm-send exits 0, both filters forward, and each destination equals
# its source.  The README's group example: the same without --export,
# with --once and the default fence flip.

: "${STM_TEST_TIMEOUT:=300}"
source ./functions.sh
set -eu
requires_psk_migration
requires socat -V

# doc_commands FILE WORD: the commands in FILE's code blocks whose first
# word is WORD, one per line, continuation lines joined.
doc_commands ()
{
    awk -v word="$2" '
        /^```/ { inblock = !inblock; next }
        !inblock { next }
        {
            line = $0
            while (line ~ /\\$/ && (getline next_line) > 0) {
                sub(/\\$/, "", line)
                line = line next_line
            }
            sub(/  +#.*$/, "", line)
            split(line, w, " ")
            if (w[1] == word) print line
        }' "$1"
}

free_port ()
{
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# placed ROOT PORT EXPORT-PORT: sed expressions that move a documented
# command into ROOT and onto the given ports.
placed ()
{
    printf '%s\n' \
        "s|/run/stm|$1/run|g" "s|/var/lib/disks|$1/disks|g" "s|/srv/disks|$1/dst|g" \
        "s|0\\.0\\.0\\.0:10810|127.0.0.1:$2|g" "s|desthost:10810|127.0.0.1:$2|g" \
        "s|0\\.0\\.0\\.0:10811|127.0.0.1:$3|g" "s| keys\\.psk| $tmp/keys.psk|g" \
        "s|--filter=migrate|--filter=$MIGRATE_FILTER|g"
}

# run_placed ROOT PORT EXPORT-PORT COMMAND: the documented COMMAND, moved.
run_placed ()
{
    local cmd
    cmd="$(sed "$(placed "$1" "$2" "$3")" <<< "$4")"
    info "running: $cmd" >&2
    eval "$cmd"
}

# spawn_placed NAME ROOT PORT EXPORT-PORT COMMAND: the same in the
# background; sets SPAWNED_PID.
spawn_placed ()
{
    local cmd
    cmd="$(sed "$(placed "$2" "$3" "$4")" <<< "$5")"
    info "starting: $cmd" >&2
    spawn "$tmp/$1.out" "$tmp/$1.err" bash -c "exec $cmd"
}

# start_daemon ROOT SOCKET COMMAND: a documented nbdkit command, which
# daemonizes; the daemon is found by its socket, for cleanup.
start_daemon ()
{
    local pid
    run_placed "$1" 0 0 "$3" || fail "nbdkit did not start: $3"
    wait_for 30 "nbdkit on $2" test -S "$2"
    pid="$(pgrep -f -- "-U $2 " | head -n 1)"
    [ -n "$pid" ] || fail "no nbdkit daemon serves $2"
    track "$pid"
}

# writer SOCKET: fio writing 4k blocks at 1 MiB/s; sets SPAWNED_PID.
writer ()
{
    requires fio --version
    spawn "$tmp/fio-$(basename "$1").log" "$tmp/fio-$(basename "$1").err" \
          fio --thread --name=guest --ioengine=nbd --uri="nbd+unix:///?socket=$1" \
          --rw=randwrite --bs=4k --iodepth=8 --size=8m --rate=,1m \
          --time_based --runtime=120
}

# The documents call the programs by name: the ones just built.
PATH="$(dirname "$STM_RECV"):$(dirname "$STM_SEND"):$PATH"
make_psk "$tmp/keys.psk"
guide="$abs_top_srcdir/docs/migrating-a-vm.md"
readme="$abs_top_srcdir/README.md"

# ---- docs/migrating-a-vm.md ------------------------------------------
g="$tmp/guide"
mkdir -p "$g/run" "$g/disks" "$g/dst"
make_random_image "$g/disks/vm1-sys.img" 32
make_random_image "$g/disks/vm1-data.img" 16
mapfile -t nbdkits < <(doc_commands "$guide" nbdkit)
[ "${#nbdkits[@]}" -eq 2 ] || fail "the guide shows ${#nbdkits[@]} nbdkit commands, not 2"
start_daemon "$g" "$g/run/vm1-sys.sock" "${nbdkits[0]}"
start_daemon "$g" "$g/run/vm1-data.sock" "${nbdkits[1]}"
writer "$g/run/vm1-sys.sock"; w1=$SPAWNED_PID
writer "$g/run/vm1-data.sock"; w2=$SPAWNED_PID

port="$(free_port)" eport="$(free_port)"
recv_cmd="$(doc_commands "$guide" stm-recv)"
send_cmd="$(doc_commands "$guide" stm-send)"
mapfile -t socats < <(doc_commands "$guide" socat)
[ -n "$recv_cmd" ] && [ -n "$send_cmd" ] && [ "${#socats[@]}" -eq 2 ] ||
    fail "the guide's stm-recv, stm-send or its two socat commands are missing"
spawn_placed recv "$g" "$port" "$eport" "$recv_cmd"; recv_pid=$SPAWNED_PID
wait_for 30 "stm-recv listening on $port" sh -c "ss -Hltn 'sport = :$port' | grep -q LISTEN"
spawn_placed send "$g" "$port" "$eport" "$send_cmd"; SEND_PID=$SPAWNED_PID

status=""
for (( i = 0; i < 240; i++ )); do
    alive "$SEND_PID" || fail "stm-send exited before it was ready: $(tail -n 3 "$tmp/send.err")"
    if [ -S "$g/run/vm1.cmd" ]; then
        status="$(run_placed "$g" "$port" "$eport" "${socats[0]}" 2>/dev/null || true)"
        case "$status" in 'OK phase=ready '*' ready=1 '*) break ;; esac
    fi
    sleep 0.5
done
case "$status" in
    'OK phase=ready '*' ready=1 '*) info "ready: $status" ;;
    *) fail "stm-send was not ready within 120 s: $status" ;;
esac
kill -INT "$w1" "$w2" 2>/dev/null || true
wait_exit "$w1" 30; wait_exit "$w2" 30
reply="$(run_placed "$g" "$port" "$eport" "${socats[1]}")"
case "$reply" in
    'OK flipped downtime_ms='*) info "CUTOVER: $reply" ;;
    *) fail "the guide's CUTOVER was answered: $reply" ;;
esac
wait_exit "$SEND_PID" 60
[ "$EXIT_STATUS" -eq 0 ] || fail "the guide's stm-send exited with $EXIT_STATUS"
for d in sys data; do
    st="$(CTL_SOCK="$g/run/vm1-$d.ctl" status_field state)"
    [ "$st" = forwarding ] || fail "disk $d's filter is $st, not forwarding"
    cmp "$g/disks/vm1-$d.img" "$g/dst/vm1-$d.img" ||
        fail "the destination of disk $d differs from its source"
done
info "the guide's group migrated, forwarding, destinations identical"
kill -TERM "$recv_pid"
wait_exit "$recv_pid" 30

# ---- README: "A virtual machine's disks, as one group" ----------------
r="$tmp/readme"
mkdir -p "$r/run" "$r/disks"
make_random_image "$r/disks/sys-src.img" 16
make_random_image "$r/disks/data-src.img" 8
# The README shows how to start one disk's nbdkit; the guide's form, for
# the two sockets its group example names.
for d in sys data; do
    start_daemon "$r" "$r/run/$d.sock" \
        "nbdkit -U /run/stm/$d.sock --filter=migrate file file=/var/lib/disks/$d-src.img migrate-control=/run/stm/$d.ctl"
done
writer "$r/run/sys.sock"; w1=$SPAWNED_PID
port="$(free_port)"
recv_cmd="$(doc_commands "$readme" stm-recv | grep -e '--output sys=')"
send_cmd="$(doc_commands "$readme" stm-send | grep -e '--disk')"
[ -n "$recv_cmd" ] && [ -n "$send_cmd" ] || fail "the README's group example is missing"
spawn_placed recv2 "$r" "$port" 0 "$recv_cmd"; recv_pid=$SPAWNED_PID
wait_for 30 "stm-recv listening on $port" sh -c "ss -Hltn 'sport = :$port' | grep -q LISTEN"
spawn_placed send2 "$r" "$port" 0 "$send_cmd"; SEND_PID=$SPAWNED_PID
wait_exit "$SEND_PID" 120
[ "$EXIT_STATUS" -eq 0 ] || fail "the README's stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send2.err")"
wait_exit "$recv_pid" 30
[ "$EXIT_STATUS" -eq 0 ] || fail "the README's stm-recv --once exited with $EXIT_STATUS"
wait_exit "$w1" 30 || true
for d in sys data; do
    st="$(CTL_SOCK="$r/run/$d.ctl" status_field state)"
    [ "$st" = fenced ] || fail "disk $d's filter is $st, not fenced"
    cmp "$r/disks/$d-src.img" "$r/disks/vm1-$d.img" ||
        fail "the README's destination of disk $d differs from its fenced source"
done
info "the README's group migrated, fenced, destinations identical"
info "PASS"
