"""RPyC 6 peer of the comparison harness (`cargo bench --bench compare`): the server.

Listens on 127.0.0.1 (an ephemeral port), prints `LISTEN <port>` on stdout, and serves until
its standard input closes (the harness went away). The service mirrors the netref bench root:
`echo`, a `value` property, `callback_loop` (server -> client calls timed here), and the
memory workload (`prepare`, `lend`, `rss`).
"""

import os
import socket
import sys
import threading
import time

import rpyc
from rpyc.utils.server import ThreadedServer


def rss_bytes():
    """Resident set size of this process, from /proc/self/status (VmRSS, kB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Item:
    """A small object lent by reference in the memory workload."""

    def __init__(self, n):
        self.n = n

    def exposed_id(self):
        return self.n


class BenchService(rpyc.Service):
    items = []

    def on_connect(self, conn):
        # The harness sets TCP_NODELAY for every system alike.
        conn._channel.stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exposed_echo(self, x):
        return x

    @property
    def exposed_value(self):
        return 1

    def exposed_callback_loop(self, cb, warmup_ns, time_ns):
        """Calls `cb(1)` for `warmup_ns`, then for `time_ns`, timing each call.

        Returns (elapsed_ns, latencies_ns) as tuples, so they travel by value."""
        clock = time.perf_counter_ns
        end = clock() + warmup_ns
        while clock() < end:
            cb(1)
        lat = []
        start = clock()
        while True:
            t0 = clock()
            cb(1)
            t1 = clock()
            lat.append(t1 - t0)
            if t1 - start >= time_ns:
                break
        return (clock() - start, tuple(lat))

    def exposed_prepare(self, n):
        """Creates `n` objects kept by the server; returns the RSS afterwards."""
        BenchService.items = [Item(i) for i in range(n)]
        return rss_bytes()

    def exposed_lend(self, start, count):
        """Lends objects `start..start+count` (a tuple travels by value, its items by
        reference)."""
        return tuple(BenchService.items[start : start + count])

    def exposed_rss(self):
        return rss_bytes()


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    server = ThreadedServer(
        BenchService,
        hostname="127.0.0.1",
        port=0,
        protocol_config={"sync_request_timeout": 300},
    )
    server._listen()  # listening before the port is announced (clients connect at once)
    print(f"LISTEN {server.port}", flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.start()


if __name__ == "__main__":
    main()
