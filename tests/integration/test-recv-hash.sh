#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-recv's side of hash comparison
# (docs/protocol.md, "Comparing"), driven by a scripted sender that speaks
# the wire protocol in the clear (stm-recv --insecure), so every answer
# can be checked byte for byte:
#  - HASH_KEY, DATA of known bytes, a ZERO, then HASH_REQs: the HASHES
#    are the UMAC-128 of those bytes under that key, unit by unit (the
#    last unit shorter), as umac-units.c computes them through nettle
#    directly, with the request's range echoed;
#  - HASH_REQ before HASH_KEY, and HASH_KEY from a HELLO that did not
#    offer hash comparison, are refused with ERROR protocol;
#  - a compare-only session on an output holding a final migration
#    answers new, hashes what the output holds, refuses DATA, keeps a
#    migration out (busy) while it runs, and leaves the output and its
#    state file byte-identical; one announcing another size is refused
#    (mismatch, "sizes differ");
#  - a --force receiver keeps an existing output's bytes for a new
#    migration that offers HASH (KEPT in HELLO_REPLY, "kept":true), and
#    empties it for one that does not.

source ./functions.sh
set -eu
requires_built
requires python3 --version
UMAC_UNITS="$PWD/umac-units"
[ -x "$UMAC_UNITS" ] || skip "umac-units is not built (make -C tests/integration umac-units)"
export UMAC_UNITS

out="$tmp/dst.img"
state="$out.stm-state"

{ cat "$abs_top_srcdir/tests/integration/wire_client.py"; cat <<'EOF'; } > "$tmp/wire.py"
import os, subprocess
HASH_KEY, HASH_REQ, HASHES = 17, 18, 19
F_HASH, F_KEEP, F_COMPARE_ONLY, F_KEPT = 4, 8, 32, 64
Conn.only_disk0 = True
X = bytes(range(16))
Y = bytes(range(16, 32))
Z = bytes(range(32, 48))
SIZE = 1 << 20
KEY = bytes(range(100, 116))
# Known bytes: 64 KiB of a pattern at 0, 12 KiB at 200 KiB.
A = bytes((i * 7 + 3) & 0xff for i in range(65536))
B = bytes((i * 13 + 1) & 0xff for i in range(12288))

def hash_key(key): return frame(HASH_KEY, key)
def hash_req(offset, length, unit, disk=0):
    return frame(HASH_REQ, struct.pack(">QII", offset, length, unit), disk)

def reply(c):
    """HELLO_REPLY's mode, features and durable seq."""
    return struct.unpack(">IIQ", c.expect(HELLO_REPLY))

def expected_hashes(key, b, unit, offset):
    """UMAC-128 of each unit, from the reference (umac-units.c)."""
    out = subprocess.run([os.environ["UMAC_UNITS"], key.hex(), str(offset), str(unit)],
                         input=b, stdout=subprocess.PIPE, check=True).stdout
    return b"".join(bytes.fromhex(l) for l in out.decode().split())

def expect_hashes(c, offset, b, unit, key=KEY):
    p = c.expect(HASHES)
    o, n, u = struct.unpack(">QII", p[:16])
    if (o, n, u) != (offset, len(b), unit):
        fail("HASHES for %d+%d unit %d, expected %d+%d unit %d"
             % (o, n, u, offset, len(b), unit))
    if p[16:] != expected_hashes(key, b, unit, offset):
        fail("HASHES of %d+%d unit %d differ from UMAC-128 of the bytes"
             % (offset, len(b), unit))
    print("wire.py: %d hashes of %d+%d as expected" % (len(p[16:]) // 16, offset, len(b)))
EOF

# scenario NAME: run the Python code on stdin against $RECV_PORT.
scenario ()
{
    { cat "$tmp/wire.py"; cat; } > "$tmp/$1.py"
    run_bounded 30 "$1" python3 "$tmp/$1.py" "$RECV_PORT"
    cat "$tmp/$1.out" "$tmp/$1.err"
    [ "$EXIT_STATUS" -eq 0 ] || fail "scenario $1 failed"
}

# 1. Hashes of what was written, before and after a ZERO; the refusals.
start_stm_recv --output "$out" --insecure --json
scenario hashes <<'EOF'
c = Conn(port)
c.send(hello(X, SIZE, features=F_HASH))
m, f, d = reply(c)
if (m, d) != (0, 0) or f != F_HASH:
    fail("HELLO_REPLY mode %d features %#x durable %d: expected new, HASH only "
         "(an empty output keeps nothing)" % (m, f, d))
c.send(hash_key(KEY), data(0, A), data(200 * 1024, B))
c.send(hash_req(0, 65536, 4096), hash_req(196 * 1024, 24 * 1024, 16384),
       hash_req(0, 300 * 1024, 65536))
expect_hashes(c, 0, A, 4096)
expect_hashes(c, 196 * 1024, bytes(4096) + B + bytes(8192), 16384)
image = bytearray(300 * 1024)
image[0:65536] = A
image[200 * 1024:200 * 1024 + len(B)] = B
expect_hashes(c, 0, bytes(image), 65536)
# A ZERO is seen by the next request, and a range need not fill its
# last unit.
c.send(zero(4096, 8192), hash_req(0, 20000, 4096))
image[4096:12288] = bytes(8192)
expect_hashes(c, 0, bytes(image[:20000]), 4096)
# A later key replaces the first.
k2 = bytes(16)
c.send(hash_key(k2), hash_req(0, 65536, 65536))
expect_hashes(c, 0, bytes(image[:65536]), 65536, key=k2)
c.close()

c = Conn(port)
c.send(hello(X, SIZE, features=F_HASH), hash_req(0, 4096, 4096))
reply(c)
c.expect_error(1, "HASH_REQ before HASH_KEY")
c.expect_closed()

c = Conn(port)
c.send(hello(X, SIZE), hash_key(KEY))
reply(c)
c.expect_error(1, "HASH_KEY", "did not offer hash comparison")
c.expect_closed()
EOF
grep -q '"event":"hello".*"kept"' "$tmp/recv.out" &&
    fail "a hello event says kept, but every output was empty"

# 2. Make it a final migration holding A at 0, then compare only.
scenario final <<'EOF'
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(0, 0)
c.send(data(0, A), data(SIZE - len(B), B), sync(1), commit(2))
c.expect(DURABLE)
c.expect(COMMITTED)
c.send(outcome(2, FLIPPED))
c.expect_recorded(2, FINAL)
c.expect_closed()
EOF
sha256sum "$out" "$state" > "$tmp/before.sha"
cp "$state" "$tmp/state.before"

scenario compare <<'EOF'
c = Conn(port)
c.send(hello(Z, SIZE, features=F_HASH | F_COMPARE_ONLY))
m, f, d = reply(c)
if (m, f, d) != (0, F_HASH | F_COMPARE_ONLY, 0):
    fail("compare-only HELLO_REPLY mode %d features %#x durable %d" % (m, f, d))
c.send(hash_key(KEY), hash_req(0, 65536, 4096),
       hash_req(SIZE - 65536, 65536, 65536))
expect_hashes(c, 0, A, 4096)
expect_hashes(c, SIZE - 65536, bytes(65536 - len(B)) + B, 65536)
# While it compares it is the active session: a migration is refused busy.
m2 = Conn(port)
m2.send(hello(Y, SIZE))
m2.expect_error(2, "busy")
m2.expect_closed()
c.send(data(0, b"\xff" * 4096))
c.expect_error(1, "DATA in a compare-only session")
c.expect_closed()

for t, payload in ((SYNC, struct.pack(">Q", 3)), (COMMIT, struct.pack(">Q", 3)),
                   (PASS_BEGIN, struct.pack(">IQ", 1, SIZE))):
    c = Conn(port)
    c.send(hello(Z, SIZE, features=F_HASH | F_COMPARE_ONLY), frame(t, payload))
    reply(c)
    c.expect_error(1, "compare-only session")
    c.expect_closed()

c = Conn(port)
c.send(hello(Z, 2 * SIZE, features=F_HASH | F_COMPARE_ONLY))
c.expect_error(5, "sizes differ", "not identical")
c.expect_closed()

# The sender closes: the receiver goes on listening, and a compare-only
# session changed nothing a resuming sender of the final migration sees.
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(3, 2)
c.close()
EOF
sha256sum -c --quiet "$tmp/before.sha" ||
    fail "a compare-only session changed the output or its state file"
cmp -s "$state" "$tmp/state.before" || fail "the state file changed"
grep -q '"event":"hello".*"compare_only":true' "$tmp/recv.out" ||
    fail "no hello event says compare_only"
grep -q '"event":"compare".*"hash_requests":2,"bytes_hashed":131072' "$tmp/recv.out" ||
    fail "no compare event with 2 requests of 128 KiB: $(grep '"compare"' "$tmp/recv.out")"
kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 10

# 3. --force: a new migration that compares keeps the output's bytes;
#    one that does not empties them.
start_stm_recv --output "$out" --insecure --json --force
scenario keep <<'EOF'
c = Conn(port)
c.send(hello(Y, SIZE, features=F_HASH))
m, f, d = reply(c)
if (m, d) != (0, 0) or f != F_HASH | F_KEPT:
    fail("HELLO_REPLY mode %d features %#x durable %d: expected new with KEPT" % (m, f, d))
c.send(hash_key(KEY), hash_req(0, 65536, 65536))
expect_hashes(c, 0, A, 65536)
c.close()
EOF
grep -q '"event":"hello".*"kept":true' "$tmp/recv.out" || fail "no hello event says kept"
grep -q "keeping the .* that $out holds to compare against" "$tmp/recv.err" ||
    fail "the receiver did not say that it keeps the output's data"
grep -qx "migration_id 101112131415161718191a1b1c1d1e1f" "$state" &&
    grep -qx "durable_seq 0" "$state" ||
    fail "the kept output is not recorded as a new migration with nothing durable: $(cat "$state")"
cmp -s -n 65536 "$out" <(python3 -c "import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) & 0xff for i in range(65536)))") ||
    fail "the kept output's first 64 KiB changed"

scenario empty <<'EOF'
c = Conn(port)
c.send(hello(Z, SIZE, features=0))
m, f, d = reply(c)
if (m, f, d) != (0, 0, 0):
    fail("HELLO_REPLY mode %d features %#x durable %d: expected new, no KEPT" % (m, f, d))
c.close()
EOF
cmp -s "$out" <(head -c 1048576 /dev/zero) ||
    fail "a new migration that does not compare did not get an emptied output"
kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 10
info "PASS"
