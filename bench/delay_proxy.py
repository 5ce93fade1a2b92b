#!/usr/bin/env python3
"""A stream proxy that adds latency, not a bandwidth limit: every chunk read on one side is
written to the other DELAY_MS/2 milliseconds after it arrived, in order, so a round trip
through it takes DELAY_MS more and pipelined requests stay pipelined. For benchmarks of NBD
clients (bench/nbd_client.sh) on a machine without tc netem.
Usage: delay_proxy.py LISTEN_SOCKET TARGET_SOCKET DELAY_MS"""
import collections
import os
import socket
import sys
import threading
import time


def pump(src, dst, delay):
    """Read src, write each chunk to dst once delay seconds have passed since it arrived."""
    q = collections.deque()
    cv = threading.Condition()

    def sender():
        while True:
            with cv:
                while not q:
                    cv.wait()
                due, data = q.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            dst.sendall(data)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    while True:
        try:
            data = src.recv(1 << 20)
        except OSError:
            data = b""
        with cv:
            q.append((time.monotonic() + delay, data))
            cv.notify()
        if not data:
            break
    t.join()


def serve(client, target, delay):
    up = socket.socket(socket.AF_UNIX)
    up.connect(target)
    a = threading.Thread(target=pump, args=(client, up, delay), daemon=True)
    b = threading.Thread(target=pump, args=(up, client, delay), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    client.close()
    up.close()


def main():
    listen, target, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 2000
    tmp = listen + ".tmp"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(tmp)
    srv.listen(16)
    os.rename(tmp, listen)  # the socket appears once it accepts
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c, target, delay), daemon=True).start()


if __name__ == "__main__":
    main()
