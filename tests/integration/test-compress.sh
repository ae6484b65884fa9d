#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: zstd compression of DATA (stm-send --compress).
# The source holds 160 MiB of text, 8 MiB of random bytes and 16 MiB of
# zeroes.  Over TLS (PSK):
#  - --compress zstd: the destination equals the source, and stm-send's
#    counters say the data crossed in well under half its size;
#  - --compress auto through a relay that carries 12 MB/s (the link is the
#    bottleneck): equal, and the relay counts far fewer bytes than the
#    data (TLS included), although what fills the output queue and the
#    socket buffers before the first decision goes uncompressed;
#  - --compress off through an unshaped relay: equal, no compression
#    reported, and at least the data's bytes crossed.
# Then a scripted sender (wire_client.py, stm-recv --insecure) sends
# DATA_ZSTD that lies: a frame whose content size is not the length, a
# frame without one that decompresses to more, a corrupt frame, DATA_ZSTD
# when the HELLO did not offer compression, and one good frame, written.
# Each lie is refused with ERROR protocol naming the offset, the
# connection closed, nothing written, and stm-recv keeps serving.

source ./functions.sh
set -eu
requires_built
requires psktool --version
requires python3 --version
requires zstd --version

# 8 MiB of text repeated: a chunk (1 MiB) compresses alone, so the
# repeats are no easier than the first.
python3 - "$tmp/src.img" <<'EOF'
import random, sys
rnd = random.Random(17)
words = ("migration block dirty durable receiver sender freeze flip the of "
         "a image source guest write pass sync commit outcome").split()
text = bytearray()
while len(text) < 8 << 20:
    line = " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 14)))
    text += ("%08d %s\n" % (len(text), line)).encode()
with open(sys.argv[1], "wb") as f:
    for i in range(20):
        f.write(text[:8 << 20])
    f.write(rnd.randbytes(8 << 20))
    f.write(bytes(16 << 20))
EOF
make_psk "$tmp/keys.psk"
data_bytes=$(( 168 * 1024 * 1024 ))

# The relay: 127.0.0.1:$RELAY_PORT to the receiver, carrying at most
# RATE bytes/s from the sender (0: unshaped), counting the bytes it
# carried that way in $tmp/relay.count when the connection ends.  It
# serves one connection and gives up after 120 s.
cat > "$tmp/relay.py" <<'EOF'
import socket, sys, threading, time
rate, dest_port = int(sys.argv[1]), int(sys.argv[2])
count_file, port_file = sys.argv[3], sys.argv[4]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
ls.settimeout(120)
open(port_file, "w").write("%d\n" % ls.getsockname()[1])
a, _ = ls.accept()
b = socket.create_connection(("127.0.0.1", dest_port))
total = [0]
def pump(src, dst, shaped):
    start = time.monotonic()
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
            if shaped:
                total[0] += len(chunk)
                if rate:
                    ahead = total[0] / rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
t = threading.Thread(target=pump, args=(b, a, False), daemon=True)
t.start()
pump(a, b, True)
t.join(10)
open(count_file, "w").write("%d\n" % total[0])
EOF

# start_counting_relay RATE: the relay in front of $RECV_PORT; sets
# SEND_DEST_PORT.
start_counting_relay ()
{
    rm -f "$tmp/relay.port" "$tmp/relay.count"
    spawn "$tmp/relay.out" "$tmp/relay.err" python3 "$tmp/relay.py" "$1" \
          "$RECV_PORT" "$tmp/relay.count" "$tmp/relay.port"
    RELAY_PID=$SPAWNED_PID
    wait_for 10 "the relay to listen" test -s "$tmp/relay.port"
    SEND_DEST_PORT="$(cat "$tmp/relay.port")"
}

# migrate NAME [STM-SEND-ARG...]: a fresh source (a flip is final for
# nbdkit's life) into $tmp/NAME.img over TLS, checked equal.
migrate ()
{
    local name="$1"
    shift
    start_nbdkit_migrate "$tmp/src.img"
    start_stm_recv --output "$tmp/$name.img" --tls-psk "$tmp/keys.psk" --json --once
    [ -z "${RELAY_RATE:-}" ] || start_counting_relay "$RELAY_RATE"
    run_stm_send "$name" 120 --tls-psk "$tmp/keys.psk" "$@"
    [ "$EXIT_STATUS" -eq 0 ] || fail "$name: stm-send exited with $EXIT_STATUS"
    wait_recv_once_done "after $name"
    cmp "$tmp/src.img" "$tmp/$name.img" || fail "$name: the destination differs from the source"
    if [ -n "${RELAY_RATE:-}" ]; then
        wait_exit "$RELAY_PID" 20
        wire="$(cat "$tmp/relay.count")"
        info "$name: $wire bytes crossed the relay for $data_bytes bytes of data"
        unset SEND_DEST_PORT
    fi
    stop_nbdkit
}

# The counters of stm-send's compression line: "N data bytes sent as M".
sent_as () { sed -n 's/.* \([0-9]*\) data bytes sent as \([0-9]*\) bytes.*/\1 \2/p' "$tmp/$1.err"; }

# 1. zstd: every chunk that pays.
migrate zstd --compress zstd
read -r in out < <(sent_as zstd) || fail "zstd: stm-send reported no compression"
info "zstd: $(grep compression "$tmp/zstd.err")"
[ "$in" -eq "$data_bytes" ] || fail "zstd: $in data bytes went through compression, not $data_bytes"
[ "$out" -lt $(( in / 2 )) ] || fail "zstd: $in data bytes crossed as $out bytes"
grep -q ' 0 chunks compressed' "$tmp/zstd.err" && fail "zstd: no chunk was compressed"

# 2. auto behind a 12 MB/s link: it must find out that compression pays.
RELAY_RATE=12000000 migrate auto --compress auto
info "auto: $(grep compression "$tmp/auto.err" || true)"
[ "$wire" -lt $(( data_bytes * 6 / 10 )) ] ||
    fail "auto: $wire bytes crossed a 12 MB/s link for $data_bytes bytes of data"

# 3. off: nothing compressed, everything crossed.
RELAY_RATE=0 migrate off --compress off
grep -q compression "$tmp/off.err" && fail "off: stm-send reports compression"
[ "$wire" -ge "$data_bytes" ] || fail "off: only $wire bytes crossed for $data_bytes of data"

# 4. Hostile DATA_ZSTD frames against a plain receiver.
head -c 65536 "$tmp/src.img" > "$tmp/chunk"
zstd -q -1 -c "$tmp/chunk" > "$tmp/sized.zst"                  # content size 65536
zstd -q -1 -c < "$tmp/chunk" > "$tmp/unsized.zst"              # no content size
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read())
for i in range(20, len(b) - 8, 7): b[i] ^= 0xa5
open(sys.argv[2], "wb").write(b)' "$tmp/sized.zst" "$tmp/corrupt.zst"

{ cat "$abs_top_srcdir/tests/integration/wire_client.py"; cat <<EOF; } > "$tmp/hostile.py"
Conn.only_disk0 = True
MID = bytes(range(16))
SIZE = 1 << 20
CHUNK = open("$tmp/chunk", "rb").read()
SIZED = open("$tmp/sized.zst", "rb").read()
UNSIZED = open("$tmp/unsized.zst", "rb").read()
CORRUPT = open("$tmp/corrupt.zst", "rb").read()
import struct as _s
NEW, RESUME = 0, 1
def open_session(features, mode, seq):
    c = Conn(port)
    c.send(hello(MID, SIZE, features=features))
    m, f, d = _s.unpack(">IIQ", c.expect(HELLO_REPLY))
    if (m, d) != (mode, seq):
        fail("HELLO_REPLY mode %d durable %d, expected %d %d" % (m, d, mode, seq))
    if (f & FEATURE_ZSTD) != (features & FEATURE_ZSTD):
        fail("HELLO_REPLY features 0x%x for a HELLO offering 0x%x" % (f, features))
    return c
def refused(frame_, *words):
    c = open_session(FEATURE_ZSTD, RESUME, 1)
    c.send(frame_)
    c.expect_error(1, *words)
    c.expect_closed()
# A good frame first: written, durable.
c = open_session(FEATURE_ZSTD, NEW, 0)
c.send(data_zstd(131072, len(CHUNK), SIZED), sync(1))
c.expect(DURABLE)
c.close()
refused(data_zstd(262144, len(CHUNK) - 4096, SIZED), "DATA_ZSTD", "offset 262144",
        "header says it holds 65536")
refused(data_zstd(262144, len(CHUNK) - 4096, UNSIZED), "offset 262144", "more bytes")
refused(data_zstd(262144, len(CHUNK) + 4096, UNSIZED), "offset 262144",
        "decompresses to 65536 bytes")
refused(data_zstd(262144, len(CHUNK), CORRUPT), "offset 262144", "zstd")
refused(data_zstd(262144, len(CHUNK), SIZED[:-3]), "offset 262144", "truncated")
refused(data_zstd(262144, len(CHUNK), SIZED + b"junk"), "offset 262144", "after")
# Outside the image: the decoder refuses it from the header.
c = open_session(FEATURE_ZSTD, RESUME, 1)
c.send(data_zstd(SIZE - 4096, len(CHUNK), SIZED))
c.expect_error(1, "outside the image")
# Not offered: refused even though the frame is good.
c = open_session(0, RESUME, 1)
c.send(data_zstd(262144, len(CHUNK), SIZED))
c.expect_error(1, "did not agree")
print("wire.py: every lie refused")
EOF
start_stm_recv --output "$tmp/plain.img" --insecure
run_bounded 60 hostile python3 "$tmp/hostile.py" "$RECV_PORT"
cat "$tmp/hostile.out" "$tmp/hostile.err"
[ "$EXIT_STATUS" -eq 0 ] || fail "the hostile scenario failed"
alive "$RECV_PID" || fail "stm-recv exited after the hostile frames"
cmp -n 65536 -i 0:131072 "$tmp/chunk" "$tmp/plain.img" || fail "the good DATA_ZSTD was not written"
image_untouched_range () { cmp -s -n 65536 -i 262144:0 "$tmp/plain.img" /dev/zero; }
image_untouched_range || fail "a refused DATA_ZSTD wrote to the output"
grep -q 'DATA_ZSTD for .* refused' "$tmp/recv.err" || fail "stm-recv did not log the refusals"
info "PASS"
