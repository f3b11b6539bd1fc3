"""A Python RPyC 6 server for netref's interoperability tests (tests/rpyc_to_python.rs and tests/python_to_rust.rs).

Usage: rpyc_service.py service|classic

Listens on 127.0.0.1 (an ephemeral port), prints `LISTEN <port>` on stdout, and serves
until its standard input closes (the test went away). `service` serves TestService below;
`classic` serves (as SlaveService, the whole interpreter, as the `rpyc_classic` command does).
"""

import os
import sys
import threading

import rpyc
from rpyc.core.service import SlaveService
from rpyc.utils.server import ThreadedServer


class Box:
    """A plain object whose attributes the client reads and sets."""

    def __init__(self):
        self.value = 1
        self.label = "box"


class TestService(rpyc.Service):
    def on_connect(self, conn):
        self._conn = conn
        self._counter = 0
        self._items = [1, 2, 3]
        self._box = Box()
        self.kept = None

    def exposed_add(self, a, b):
        return a + b

    def exposed_greet(self, name, greeting="hello", punct="!"):
        return f"{greeting}, {name}{punct}"

    @property
    def exposed_counter(self):
        """Re-evaluated on every read: RPyC never caches attributes."""
        self._counter += 1
        return self._counter

    def exposed_items(self):
        return self._items

    def exposed_items_snapshot(self):
        return tuple(self._items)

    def exposed_box(self):
        return self._box

    def exposed_box_state(self):
        return (self._box.value, self._box.label)

    def exposed_call_many(self, cb, n):
        total = 0
        for i in range(n):
            total += cb(i)
        return total

    def exposed_call_kw(self, cb):
        return cb(1, scale=10)

    def exposed_fail(self):
        raise ValueError("boom", 42)

    def exposed_missing_key(self):
        return {}["nope"]

    def exposed_gen(self, n):
        return (i * i for i in range(n))

    def exposed_echo(self, x):
        return x

    def exposed_keep(self, x):
        self.kept = x

    def exposed_is_kept(self, x):
        return x is self.kept

    def exposed_drop_kept(self):
        self.kept = None

    def exposed_is_items(self, x):
        return x is self._items

    def exposed_call_method_of(self, obj, name, *args):
        return getattr(obj, name)(*args)

    def exposed_local_objects(self):
        """What this connection lends right now: (type name, extra count) per entry."""
        d = self._conn._local_objects._dict
        return tuple(sorted((k[0], v[1]) for k, v in d.items()))

    def exposed_cwd(self):
        return os.getcwd()


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "service"
    config = {"allow_public_attrs": True, "allow_setattr": True, "sync_request_timeout": 60}
    service = SlaveService if mode == "classic" else TestService
    server = ThreadedServer(service, hostname="127.0.0.1", port=0, protocol_config=config)
    server._listen()  # listening before the port is announced
    print(f"LISTEN {server.port}", flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.start()


if __name__ == "__main__":
    main()
