"""RPyC 6 peer of the comparison harness (`cargo bench --bench compare`): the client.

Usage: rpyc_client.py PORT

Connects to `rpyc_server.py` on 127.0.0.1:PORT, then reads one JSON command per line on
stdin and answers each with one JSON line on stdout:

    {"op": "echo_fresh" | "echo_cached" | "attr" | "callback" | "bytes" | "inflight",
     "warmup_ns": N, "time_ns": N, "size": BYTES, "depth": N}
      -> {"calls": N, "elapsed_ns": N, "lat_ns": [N, ...]}
    {"op": "memory", "n": N, "batch": N}
      -> {"n": N, "owner_before": B, "owner_after": B, "holder_before": B, "holder_after": B}

Timed workloads run for `warmup_ns` untimed, then until `time_ns` has passed, timing each call
with perf_counter_ns.
"""

import json
import os
import socket
import sys
import time
from collections import deque

import rpyc

clock = time.perf_counter_ns


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def timed(fn, warmup_ns, time_ns):
    end = clock() + warmup_ns
    while clock() < end:
        fn()
    lat = []
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        lat.append(t1 - t0)
        if t1 - start >= time_ns:
            break
    return {"calls": len(lat), "elapsed_ns": clock() - start, "lat_ns": lat}


def inflight(conn, depth, warmup_ns, time_ns):
    aecho = rpyc.async_(conn.root.echo)

    def run(duration_ns, lat):
        start = clock()
        end = start + duration_ns
        q = deque()
        for _ in range(depth):
            q.append((clock(), aecho(1)))
        calls = 0
        while q:
            t0, res = q.popleft()
            res.wait()
            if res.value != 1:
                raise RuntimeError("bad echo")
            now = clock()
            calls += 1
            if lat is not None:
                lat.append(now - t0)
            if now < end:
                q.append((clock(), aecho(1)))
        return calls, clock() - start

    run(warmup_ns, None)
    lat = []
    calls, elapsed = run(time_ns, lat)
    return {"calls": calls, "elapsed_ns": elapsed, "lat_ns": lat}


def run(conn, cmd):
    op = cmd["op"]
    warmup, t = cmd.get("warmup_ns", 0), cmd.get("time_ns", 0)
    if op == "echo_fresh":
        return timed(lambda: conn.root.echo(1), warmup, t)
    if op == "echo_cached":
        f = conn.root.echo
        return timed(lambda: f(1), warmup, t)
    if op == "attr":
        return timed(lambda: conn.root.value, warmup, t)
    if op == "callback":
        elapsed, lat = conn.root.callback_loop(lambda x: x, warmup, t)
        return {"calls": len(lat), "elapsed_ns": elapsed, "lat_ns": list(lat)}
    if op == "bytes":
        payload = os.urandom(cmd["size"])
        out = timed(lambda: conn.root.echo(payload), warmup, t)
        if conn.root.echo(payload) != payload:
            raise RuntimeError("the echoed bytes differ")
        return out
    if op == "inflight":
        return inflight(conn, cmd["depth"], warmup, t)
    if op == "memory":
        n, batch = cmd["n"], cmd["batch"]
        # Warm up the paths used below, so their one-time allocations are not counted.
        conn.root.prepare(batch)
        warm = [conn.root.lend(0, batch)]
        warm[0][-1].id()
        del warm
        owner_before = conn.root.prepare(n)
        holder_before = rss_bytes()
        held = []
        for start in range(0, n, batch):
            held.append(conn.root.lend(start, min(batch, n - start)))
        holder_after = rss_bytes()
        owner_after = conn.root.rss()
        if held[-1][-1].id() != n - 1:
            raise RuntimeError("the last lent object is not the expected one")
        return {
            "n": n,
            "owner_before": owner_before,
            "owner_after": owner_after,
            "holder_before": holder_before,
            "holder_after": holder_after,
        }
    raise ValueError(f"unknown op {op!r}")


def main():
    port = int(sys.argv[1])
    conn = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 300})
    conn._channel.stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            reply = run(conn, json.loads(line))
        except Exception as e:  # reported to the harness, which fails the workload
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
