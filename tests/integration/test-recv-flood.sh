#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a flood of connections that each send garbage and
# then neither read nor close.  The receiver answers each with ERROR and
# keeps it only briefly (a connection that never said HELLO lingers at
# most 2 s for its last reply, then 2 s for the peer to close); past 64
# connections held, it refuses new ones at once and says so.  Its
# descriptors stay bounded throughout, and once the flood is over a real
# migration goes through (before, lingering connections were not counted
# and a fast enough flood could use up the descriptors the active
# migration's state file needs).

source ./functions.sh
set -eu
requires_built
requires python3 --version

size_mib=8
make_random_image "$tmp/src.img" "$size_mib"
start_stm_recv --output "$tmp/dst.img" --insecure --json

cat > "$tmp/flood.py" <<'PY'
import socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"this is not stm!")      # 16 bytes: a header, bad magic
        socks.append(s)
    except OSError:
        pass
    time.sleep(0.002)
time.sleep(hold)                            # read nothing, close nothing
print(len(socks))
PY
spawn "$tmp/flood.out" "$tmp/flood.err" python3 "$tmp/flood.py" "$RECV_PORT" 300 4
FLOOD_PID=$SPAWNED_PID

# While the flood holds its sockets, stm-recv's descriptors stay bounded.
most=0
for (( i = 0; i < 30; i++ )); do
    fds="$(ls /proc/"$RECV_PID"/fd 2>/dev/null | wc -l)"
    [ "$fds" -gt "$most" ] && most="$fds"
    sleep 0.1
done
info "stm-recv held at most $most descriptors during the flood"
[ "$most" -le 90 ] || fail "stm-recv held $most descriptors during the flood of 300 connections"
wait_exit "$FLOOD_PID" 60
grep -q "refusing the connection from" "$tmp/recv.err" ||
    fail "stm-recv did not say it refused connections: $(tail -n 5 "$tmp/recv.err")"
info "$(grep -m1 "refusing the connection from" "$tmp/recv.err")"
alive "$RECV_PID" || fail "stm-recv died in the flood"

# The flood is over: a real migration goes through.
start_nbdkit_migrate "$tmp/src.img"
run_stm_send send 60 --insecure
[ "$EXIT_STATUS" -eq 0 ] || fail "the migration after the flood exited with $EXIT_STATUS"
stop_nbdkit
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the source"
info "PASS"
