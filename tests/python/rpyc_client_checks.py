"""Python's own rpyc client against a netref server (tests/python_to_rust.rs).

Usage: rpyc_client_checks.py PORT

Runs every check with Python's asserts, printing `ok <check>` after each; then drops its
netrefs, prints `DROPPED`, and waits for a line on stdin (the test looks at the server's
tables meanwhile) before it closes the connection and prints `CLOSED`.
"""

import gc
import sys

import rpyc


def expect(exc_type, fn):
    try:
        fn()
    except exc_type as e:
        return e
    raise AssertionError(f"expected {exc_type.__name__}")


def main():
    port = int(sys.argv[1])
    conn = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 60})
    root = conn.root

    assert root.add(1, 2) == 3
    assert root.exposed_add(2, 3) == 5, "the exposed_ prefix is an alias"
    print("ok add", flush=True)

    c = root.counter
    assert c.inc() == 1
    assert root.counter.inc() == 2
    assert c.value == 2
    print("ok counter", flush=True)

    ticks = []
    assert root.every(3, ticks.append) == 3
    assert ticks == [0, 1, 2], ticks
    print("ok every", flush=True)

    calls = []

    def cb(i):
        calls.append(i)
        return i

    assert root.sum_callbacks(10000, cb) == sum(range(10000))
    assert len(calls) == 10000
    print("ok callbacks", flush=True)

    assert list(root.numbers(5)) == [0, 1, 2, 3, 4]
    assert [x * 2 for x in root.numbers(3)] == [0, 2, 4]
    assert root.squares(4) == (0, 1, 4, 9)
    lst = root.items()
    assert len(lst) == 3
    assert lst[1] == "b"
    assert "c" in lst
    assert list(lst) == ["a", "b", "c"]
    print("ok iteration", flush=True)

    names = dir(root)
    assert names == sorted(
        ["add", "counter", "every", "fail", "is_made", "items", "label", "make",
         "numbers", "squares", "sum_callbacks"]
    ), names
    assert "hidden" not in names
    print("ok dir", flush=True)

    hidden = expect(AttributeError, lambda: root.hidden)
    unknown = expect(AttributeError, lambda: root.no_such_member)
    assert not hasattr(root, "hidden")
    assert not hasattr(root, "_secret")
    a = str(hidden).split("\n")[0].replace("hidden", "X")
    b = str(unknown).split("\n")[0].replace("no_such_member", "X")
    assert a == b, (a, b)
    print("ok hidden", flush=True)

    t = root.make("first")
    assert t.name() == "first"
    assert root.is_made(t) is True
    other = root.make("second")
    assert root.is_made(t) is False
    assert root.is_made(other) is True
    assert t == t and t != other
    print("ok identity", flush=True)

    root.label = "from python"
    assert root.label == "from python"
    e = expect(TypeError, lambda: setattr(root, "add", 1))
    print("ok setattr", flush=True)

    e = expect(RuntimeError, lambda: root.fail("bad thing"))
    assert "bad thing" in str(e), str(e)
    e = expect(TypeError, lambda: root.add("x"))
    print("ok errors", flush=True)

    assert "Calc" in repr(root)
    assert root.add.__doc__ == "Adds two numbers."
    print("ok repr", flush=True)

    del c, lst, t, other, e, hidden, unknown, names
    gc.collect()
    # A synchronous request after the DELs: they are handled by then (its own bound
    # method's DEL follows it).
    assert root.add(0, 0) == 0
    print("DROPPED", flush=True)
    sys.stdin.readline()
    conn.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    main()
