"""`conn.root.add(1, 2)` from Python's own client, for the worked trace in docs/rpyc.md
(tests/python_to_rust.rs).

Usage: rpyc_trace_client.py PORT

Connects (which sends nothing), prints CONNECTED, waits for a line on stdin (the test
installs its tracer meanwhile), then makes the call, prints its result, and closes.
"""

import sys

import rpyc


def main():
    conn = rpyc.connect("127.0.0.1", int(sys.argv[1]))
    print("CONNECTED", flush=True)
    sys.stdin.readline()
    print(conn.root.add(1, 2), flush=True)
    conn.close()


if __name__ == "__main__":
    main()
