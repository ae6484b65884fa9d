#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: garbage thrown at stm-recv's port before and
# during a real migration.  Over TLS (PSK): random bytes, an stm frame
# header announcing a 4 GiB payload sent in the clear, a truncated TLS
# ClientHello left hanging, a connection that never says anything, and a
# flood of silent connections (more than the receiver has slots).
# In the clear (a second receiver with --insecure, where the wire decoder
# is what meets the bytes): a huge length, DATA before HELLO, bad HELLOs,
# a write outside the image, a truncated frame, a text with control
# characters.  Each bad peer must be closed, the idle and half-open ones
# within the handshake/HELLO timeouts; the real migration must complete
# byte-identical; both receivers must still be running, serving, and
# within a bounded amount of memory.

source ./functions.sh
set -eu
requires_psk_migration
requires python3 --version

size_mib=16
make_random_image "$tmp/src.img" "$size_mib"
make_psk "$tmp/keys.psk"

# The hostile peer: one way of misbehaving per run.  It exits 0 once the
# receiver has closed the connection within the allowed time, 1 if not.
cat > "$tmp/hostile.py" <<'EOF'
import os, socket, struct, sys, time

MAGIC = 0x53544d57
port, mode = int(sys.argv[1]), sys.argv[2]

def header(t, length, magic=MAGIC, version=1, reserved=0):
    return struct.pack(">IHHII", magic, version, t, length, reserved)

def frame(t, payload=b""):
    return header(t, len(payload)) + payload

def hello(mid, size, block=65536, features=0):
    return frame(1, mid + struct.pack(">QII", size, block, features))

def fail(msg):
    print("hostile.py %s: FAIL: %s" % (mode, msg), file=sys.stderr)
    sys.exit(1)

def connect():
    return socket.create_connection(("127.0.0.1", port), timeout=30)

def closed_within(s, limit, what, at_least=0):
    """Read until the receiver closes, within limit seconds but not before
    at_least; what it sent is returned."""
    start, got = time.monotonic(), b""
    s.settimeout(1)
    while time.monotonic() - start < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        got += chunk
    else:
        fail("%s: the connection is still open after %d s" % (what, limit))
    took = time.monotonic() - start
    if took < at_least:
        fail("%s: closed after %.1f s, before its timeout" % (what, took))
    print("hostile.py %s: closed by the receiver after %.1f s" % (mode, took))
    return got

def send(s, b):
    try:
        s.sendall(b)
    except (ConnectionResetError, BrokenPipeError):
        pass

def expect_error(s, code, what):
    """The receiver ends with ERROR code (after a HELLO_REPLY, if the
    garbage came after a good HELLO) and closes."""
    got = closed_within(s, 10, what)
    while len(got) >= 16:
        magic, _, t, length, _ = struct.unpack(">IHHII", got[:16])
        if magic != MAGIC:
            break
        if t == 12 and length >= 8 and len(got) >= 16 + length:
            c = struct.unpack(">I", got[16:20])[0]
            if c != code:
                fail("%s: expected ERROR %d, got ERROR %d" % (what, code, c))
            print("hostile.py %s: %s: ERROR %d: %s"
                  % (mode, what, c, got[24:16 + length].decode()))
            return
        got = got[16 + length:]
    fail("%s: no ERROR %d before the close" % (what, code))

X = os.urandom(16)

if mode == "random":
    s = connect()
    send(s, os.urandom(256 * 1024))
    closed_within(s, 15, "random bytes")
elif mode == "huge-header":
    # Type DATA, payload length 4 GiB - 1.
    s = connect()
    send(s, header(3, 0xffffffff) + os.urandom(1024))
    closed_within(s, 15, "a header announcing 4 GiB")
elif mode == "tls-hello":
    # A TLS record header for a 512-byte handshake message, the start of
    # a ClientHello, then nothing: the handshake must time out.
    s = connect()
    send(s, bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
         + os.urandom(32))
    closed_within(s, 20, "a truncated ClientHello", at_least=5)
elif mode == "idle":
    s = connect()
    closed_within(s, 25, "an idle connection", at_least=5)
elif mode == "flood":
    # More silent connections than the receiver has slots: the oldest
    # silent ones make room, none may stay open past the HELLO timeout.
    socks = [connect() for _ in range(12)]
    for i, s in enumerate(socks):
        closed_within(s, 25, "silent connection %d of a flood" % i)
elif mode == "wire":
    # In the clear: the wire decoder and the session meet every byte.
    s = connect(); send(s, header(3, 0xffffffff))
    expect_error(s, 1, "a header announcing 4 GiB")
    s = connect(); send(s, header(3, 0xfffff, magic=0x12345678))
    expect_error(s, 1, "a bad magic")
    s = connect(); send(s, header(200, 0))
    expect_error(s, 1, "an unknown type")
    s = connect(); send(s, frame(3, struct.pack(">QI", 0, 4) + b"abcd"))
    expect_error(s, 1, "DATA before HELLO")
    s = connect(); send(s, hello(X, 1 << 20, block=3))
    expect_error(s, 1, "a HELLO with block size 3")
    s = connect(); send(s, hello(X, 1 << 20, features=0x80))
    expect_error(s, 1, "a HELLO with unknown features")
    s = connect(); send(s, hello(X, 1 << 63))
    expect_error(s, 1, "a HELLO with an image of 2^63 bytes")
    s = connect(); send(s, frame(12, struct.pack(">II", 1, 5) + b"a\x1bb\x00c"))
    expect_error(s, 1, "an ERROR text with control characters")
    s = connect()
    send(s, hello(X, 1 << 20) + frame(3, struct.pack(">QI", (1 << 20) - 2, 4) + b"abcd"))
    expect_error(s, 1, "DATA beyond the image")
    s = connect()
    send(s, hello(X, 1 << 20) + frame(4, struct.pack(">QQ", 0, 1 << 62)))
    expect_error(s, 1, "ZERO beyond the image")
    # A frame cut short, then the peer goes away.
    s = connect()
    send(s, hello(X, 1 << 20) + header(3, 12 + 65536) + struct.pack(">QI", 0, 65536)
         + b"x" * 1000)
    s.shutdown(socket.SHUT_WR)
    closed_within(s, 10, "a frame cut short")
    # After all that, a well-behaved session still works.
    s = connect()
    send(s, hello(X, 1 << 20) + frame(3, struct.pack(">QI", 0, 4) + b"good")
         + frame(7, struct.pack(">Q", 1)))
    s.settimeout(10)
    got = b""
    while len(got) < 40:
        chunk = s.recv(4096)
        if not chunk:
            fail("the receiver closed a well-behaved session")
        got += chunk
    t1 = struct.unpack(">H", got[6:8])[0]
    t2 = struct.unpack(">H", got[38:40])[0]
    if (t1, t2) != (2, 8):
        fail("a well-behaved session got types %d, %d, not HELLO_REPLY, DURABLE" % (t1, t2))
    print("hostile.py wire: a good session after the garbage got HELLO_REPLY and DURABLE")
    s.close()
else:
    fail("unknown mode")
EOF

# hostile NAME MODE: a hostile peer against $RECV_PORT in the background;
# sets HOSTILE_PIDS.
HOSTILE_PIDS=()
hostile ()
{
    spawn "$tmp/$1.out" "$tmp/$1.err" python3 "$tmp/hostile.py" "$RECV_PORT" "$2"
    HOSTILE_PIDS+=("$SPAWNED_PID:$1")
}

# peak_rss_mib PID: the peak resident memory of a process, in MiB.
peak_rss_mib () { awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$1/status"; }

# --- In the clear: the wire decoder and the session state machine. -------
start_stm_recv --output "$tmp/clear.img" --insecure
CLEAR_PID=$RECV_PID
hostile wire wire
wait_exit "$SPAWNED_PID" 60
cat "$tmp/wire.out" "$tmp/wire.err"
[ "$EXIT_STATUS" -eq 0 ] || fail "the receiver in the clear mishandled the hostile peer"
alive "$CLEAR_PID" || fail "stm-recv --insecure exited after the hostile peer"
info "stm-recv --insecure peak memory: $(peak_rss_mib "$CLEAR_PID") MiB"
[ "$(peak_rss_mib "$CLEAR_PID")" -lt 64 ] || fail "stm-recv --insecure used too much memory"
HOSTILE_PIDS=()

# --- Over TLS, during a real migration. ----------------------------------
start_nbdkit_migrate "$tmp/src.img"
start_writer_and_wait 4m 60 0 --rate=,1m
start_psk_recv

hostile idle idle
idle_pid=$SPAWNED_PID
hostile tls-hello tls-hello
tls_hello_pid=$SPAWNED_PID
hostile random1 random
hostile huge1 huge-header

# At 2 MiB/s the full pass of 16 MiB takes about 8 s: garbage keeps
# arriving while it runs.
start_stm_send send --tls-psk "$tmp/keys.psk" --rate 2097152 --max-passes 4
wait_for 30 "stm-send to start its first pass" generation_at_least 1
hostile random2 random
hostile huge2 huge-header
# Once the handshake timeout has closed the idle peers, a flood of
# silent connections: they take every free slot and evict each other,
# never the active sender.
wait_exit "$idle_pid" 30
wait_exit "$tls_hello_pid" 30
alive "$SEND_PID" || info "note: the migration ended before the flood"
hostile flood flood
sleep 1
hostile random3 random

wait_exit "$SEND_PID" 90
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS while garbage hit the receiver"
state_is fenced || fail "the source is not fenced after the migration"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"
info "the migration under fire is byte-identical"

for entry in "${HOSTILE_PIDS[@]}"; do
    pid="${entry%%:*}" name="${entry#*:}"
    wait_exit "$pid" 40
    cat "$tmp/$name.out" "$tmp/$name.err"
    [ "$EXIT_STATUS" -eq 0 ] || fail "hostile peer $name: the receiver did not close it as it should"
done
alive "$RECV_PID" || fail "stm-recv exited after the hostile peers"
grep -q "make room" "$tmp/recv.err" || fail "the flood evicted no silent connection"
grep -q '"event":"hello".*"mode":"new"' "$tmp/recv.out" || fail "the receiver logged no HELLO"
grep -qx "state final" "$tmp/dst.img.stm-state" || fail "the state file does not say final"
info "stm-recv (TLS) peak memory: $(peak_rss_mib "$RECV_PID") MiB"
[ "$(peak_rss_mib "$RECV_PID")" -lt 128 ] || fail "stm-recv used too much memory"
info "PASS"
