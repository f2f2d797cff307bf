#!/usr/bin/env python3
"""TLS connection load for scripts/bench-tls (issue 20), against any broker.

  bench-tls-conns.py handshakes HOST:PORT CA.pem SECONDS PROCESSES
      Each of PROCESSES loops for SECONDS: connect, full TLS handshake (a new
      context per process and no session reuse, so every handshake is a full
      one), one ApiVersions v0 request and its answer (so the broker has
      finished its side), close. Prints "<connections> <wall seconds>".

  bench-tls-conns.py idle HOST:PORT CA.pem COUNT READY_FILE PROCESSES
      Opens COUNT connections (split over PROCESSES), each set up as above and
      then left open and idle; writes the number opened to READY_FILE once
      all are open, then holds them until killed.

The broker's CPU and memory are measured by the caller from /proc.
"""
import multiprocessing
import os
import signal
import socket
import ssl
import struct
import sys
import time


def context(ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False
    return ctx


API_VERSIONS_V0 = (
    lambda client: struct.pack(">hhih", 18, 0, 1, len(client)) + client
)(b"bench-tls")
REQUEST = struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0


def read_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        out += chunk
    return bytes(out)


def open_one(ctx, host, port):
    raw = socket.create_connection((host, port), timeout=60)
    sock = ctx.wrap_socket(raw, server_hostname=host)
    sock.sendall(REQUEST)
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    read_exact(sock, size)
    return sock


def handshake_loop(addr, ca, seconds, out):
    host, port = addr.rsplit(":", 1)
    ctx = context(ca)
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        open_one(ctx, host, int(port)).close()
        n += 1
    out.put(n)


def hold(addr, ca, count, out):
    host, port = addr.rsplit(":", 1)
    ctx = context(ca)
    socks = [open_one(ctx, host, int(port)) for _ in range(count)]
    out.put(len(socks))
    signal.sigwait([signal.SIGTERM])


def main():
    mode, addr, ca = sys.argv[1:4]
    out = multiprocessing.Queue()
    if mode == "handshakes":
        seconds, procs = float(sys.argv[4]), int(sys.argv[5])
        t0 = time.monotonic()
        workers = [
            multiprocessing.Process(target=handshake_loop, args=(addr, ca, seconds, out))
            for _ in range(procs)
        ]
        for w in workers:
            w.start()
        total = sum(out.get() for _ in workers)
        for w in workers:
            w.join()
        print(total, "%.3f" % (time.monotonic() - t0))
    elif mode == "idle":
        count, ready, procs = int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        shares = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
        workers = [
            multiprocessing.Process(target=hold, args=(addr, ca, share, out), daemon=True)
            for share in shares
        ]
        for w in workers:
            w.start()
        opened = sum(out.get() for _ in workers)
        with open(ready + ".tmp", "w") as f:
            f.write("%d\n" % opened)
        os.rename(ready + ".tmp", ready)
        signal.sigwait([signal.SIGTERM])
        for w in workers:
            os.kill(w.pid, signal.SIGTERM)
            w.join()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
