# SPDX-License-Identifier: BSD-3-Clause
# stm integration tests: a scripted sender, speaking the wire protocol
# (docs/protocol.md) to stm-recv over plain TCP (--insecure), for the
# tests that drive the receiver message by message (test-recv-state.sh,
# test-recv-multidisk.sh).  Each test puts its own constants after this
# file and its scenarios after those; a scenario exits non-zero with a
# message when an answer is not the expected one.
import os, socket, struct, sys

MAGIC, VERSION = 0x53544d57, 1
HELLO, HELLO_REPLY, DATA, ZERO, PASS_BEGIN, PASS_END, SYNC, DURABLE, \
    COMMIT, COMMITTED, ABORT, ERROR, KEEPALIVE, OUTCOME, RECORDED, \
    EXPORT = range(1, 17)
FEATURE_DISKS = 1
DATA_ZSTD, FEATURE_ZSTD = 20, 16
FLIPPED, THAWED = 1, 2
INCOMPLETE, PREPARED, FINAL, SUPERSEDED = range(4)

def frame(t, payload=b"", disk=0):
    return struct.pack(">IHHII", MAGIC, VERSION, t, len(payload), disk) + payload

def hello(mid, size, block=65536, features=0):
    return frame(HELLO, mid + struct.pack(">QII", size, block, features))

def group_hello(mid, disks):
    """disks: [(name, size, block)], in the order that defines indexes."""
    table = struct.pack(">I", len(disks))
    for name, size, block in disks:
        table += struct.pack(">QIH", size, block, len(name)) + name.encode()
    return frame(HELLO, mid + struct.pack(">QII", disks[0][1], disks[0][2],
                                          FEATURE_DISKS) + table)

def data(offset, b, disk=0):
    return frame(DATA, struct.pack(">QI", offset, len(b)) + b, disk)

def data_zstd(offset, length, zframe, disk=0):
    """DATA_ZSTD: length is the decompressed length it claims."""
    return frame(DATA_ZSTD, struct.pack(">QI", offset, length) + zframe, disk)

def zero(offset, length, disk=0):
    return frame(ZERO, struct.pack(">QQ", offset, length), disk)

def sync(seq): return frame(SYNC, struct.pack(">Q", seq))
def commit(seq): return frame(COMMIT, struct.pack(">Q", seq))
def outcome(seq, o): return frame(OUTCOME, struct.pack(">QI", seq, o))

def fail(msg):
    print("wire.py: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)

class Conn:
    # A test of one-disk sessions sets this: every header's disk index
    # must then be 0.
    only_disk0 = False
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.disk = 0
    def send(self, *frames):
        self.s.sendall(b"".join(frames))
    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf
    def recv(self):
        """The next message's type and payload ((None, None) at EOF); its
        header's disk index is left in self.disk."""
        head = self._read(16)
        if head is None:
            return None, None
        magic, version, t, length, self.disk = struct.unpack(">IHHII", head)
        if magic != MAGIC or version != VERSION or (self.only_disk0 and self.disk != 0):
            fail("the receiver sent a bad header %r" % head)
        payload = self._read(length) if length else b""
        return t, payload
    def expect(self, t):
        got, payload = self.recv()
        if got != t:
            fail("expected message type %d, got %r (%r)" % (t, got, payload))
        return payload
    def expect_reply(self, mode, seq):
        m, features, durable = struct.unpack(">IIQ", self.expect(HELLO_REPLY))
        if (m, durable) != (mode, seq):
            fail("HELLO_REPLY mode %d durable %d, expected mode %d durable %d"
                 % (m, durable, mode, seq))
    def expect_recorded(self, seq, state):
        s, st = struct.unpack(">QI", self.expect(RECORDED))
        if (s, st) != (seq, state):
            fail("RECORDED seq %d state %d, expected seq %d state %d"
                 % (s, st, seq, state))
    def expect_error(self, code, *parts):
        p = self.expect(ERROR)
        c, n = struct.unpack(">II", p[:8])
        text = p[8:8 + n].decode()
        if c != code or any(x not in text for x in parts):
            fail("ERROR %d %r, expected code %d mentioning %r" % (c, text, code, parts))
        print("wire.py: ERROR as expected: " + text)
    def expect_closed(self):
        if self._read(1) is not None:
            fail("the connection was not closed")
    def close(self):
        # Wait until the receiver has ended the session (it closes its end
        # on our EOF), so that the next HELLO does not find it busy.
        self.s.shutdown(socket.SHUT_WR)
        while self.s.recv(4096):
            pass
        self.s.close()

port = int(sys.argv[1])
