"""Replies Python cannot be given, from Python's own rpyc client (tests/python_to_rust.rs).

Usage: rpyc_unsent_replies.py PORT

Connects, reads the root and prints READY; then, for each line on stdin naming a check,
runs it and prints what Python saw (`raised <Type>: <first line of the message>`, or
`returned <value>`); `add` prints the sum `root.add(2, 3)`. At EOF it closes and prints
CLOSED.
"""

import gc
import sys

import rpyc


class Box:
    name = "python's box"


def main():
    conn = rpyc.connect("127.0.0.1", int(sys.argv[1]), config={"sync_request_timeout": 60})
    root = conn.root
    box = Box()
    checks = {
        "pair": lambda: root.pair(box),
        "pair_later": lambda: root.pair_later(box),
        "greedy": lambda: next(root.greedy()),
        "add": lambda: root.add(2, 3),
    }
    print("READY", flush=True)
    for line in sys.stdin:
        try:
            got = checks[line.strip()]()
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else ""
            print(f"raised {type(e).__name__}: {first}", flush=True)
        else:
            print(f"returned {got!r}", flush=True)
        gc.collect()
    conn.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    main()
