#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark helper (bench/live.sh, bench/link.sh): drive one
# qemu-storage-daemon blockdev-mirror over QMP, as /work/shared/anchors.md
# describes, and print its timings as one JSON object on stdout.
#
#   live-qemu-mirror.py QMP_SOCKET TARGET_PORT COPY_MODE READY_TIMEOUT_S
#                       [CUTOVER_TIMEOUT_S [TARGET_HOST [TLS_CREDS_ID]]]
#
# It adds the NBD target node (TARGET_HOST, default 127.0.0.1; over TLS
# with the daemon's tls-creds object TLS_CREDS_ID, if given: add_ms is
# what connecting and the handshake took), starts the mirror (sync=full),
# waits for BLOCK_JOB_READY (converged) at most READY_TIMEOUT_S, then
# cancels the job (block-job-cancel drains guest I/O and leaves a
# consistent target) and waits for BLOCK_JOB_COMPLETED.  Printed: total_ms (mirror start to
# COMPLETED), ready_ms, cutover_ms (cancel to COMPLETED: QEMU's downtime
# for the guest's writes), converged (false if READY never came: the job is
# then cancelled anyway, and the target is incomplete).
import json
import socket
import sys
import time


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.read()                         # the greeting
        self.cmd("qmp_capabilities")

    def read(self, timeout=None):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read(60)
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError("%s: %s" % (name, r["error"]))
            return r.get("return")

    def wait_event(self, name, deadline):
        for i, e in enumerate(self.events):
            if e["event"] == name:
                del self.events[i]
                return e
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                r = self.read(left)
            except socket.timeout:
                return None
            if r.get("event") == name:
                return r
            if "event" in r:
                self.events.append(r)


def main():
    qmp_path, port, mode, ready_timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    cutover_timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 600.0
    host = sys.argv[6] if len(sys.argv) > 6 else "127.0.0.1"
    tls = {"tls-creds": sys.argv[7]} if len(sys.argv) > 7 else {}
    q = Qmp(qmp_path)
    t_add = time.monotonic()
    q.cmd("blockdev-add", driver="nbd", **{"node-name": "tgt"}, **tls,
          server={"type": "inet", "host": host, "port": port})
    t0 = time.monotonic()
    q.cmd("blockdev-mirror", **{"job-id": "m0", "copy-mode": mode},
          device="src", target="tgt", sync="full")
    ready = q.wait_event("BLOCK_JOB_READY", t0 + ready_timeout)
    t_ready = time.monotonic()
    q.cmd("block-job-cancel", device="m0")
    # The cancel drains guest I/O, which under a writer that never stops
    # can take minutes; after CUTOVER_TIMEOUT_S give up waiting, cancel
    # with force (the target is then not consistent) and report it.
    done = q.wait_event("BLOCK_JOB_COMPLETED", time.monotonic() + cutover_timeout)
    t1 = time.monotonic()
    if done is None:
        q.cmd("block-job-cancel", device="m0", force=True)
        q.wait_event("BLOCK_JOB_COMPLETED", time.monotonic() + 60)
    print(json.dumps({
        "add_ms": round((t0 - t_add) * 1000, 1),
        "total_ms": round((t1 - t0) * 1000, 1),
        "ready_ms": round((t_ready - t0) * 1000, 1),
        "cutover_ms": round((t1 - t_ready) * 1000, 1),
        "converged": ready is not None,
        "completed": done is not None,
    }))


if __name__ == "__main__":
    main()
