#!/usr/bin/env bash
# Makes sure a Python virtualenv with RPyC 6.0.2 from the package index exists, and prints
# the path of its python on the last line of stdout.
#
# Used by the RPyC interoperability tests on first use (several test processes may call it
# at once: a lock serializes them), by `scripts/bench-prepare.sh` and by `.ci/run`.
# Idempotent: a venv that already has rpyc 6.0.2 is left as it is.
#
#   NETREF_BENCH_VENV  where the venv lives (default target/bench-venv)
#   PYTHON             the interpreter that creates it (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${NETREF_BENCH_VENV:-target/bench-venv}"
PYTHON="${PYTHON:-python3}"
RPYC_VERSION="6.0.2"

has_rpyc() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c "import rpyc, sys; sys.exit(rpyc.__version__ != '$RPYC_VERSION')" 2>/dev/null
}

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if ! has_rpyc; then
  if ! "$PYTHON" -m venv "$VENV" >&2; then
    # Debian's python3 lacks ensurepip without the python3-venv package.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
      "$PYTHON" -m venv "$VENV" >&2
    else
      echo "rpyc-venv: cannot create a venv with $PYTHON" >&2
      exit 1
    fi
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "rpyc==$RPYC_VERSION" >&2
  has_rpyc
  echo "rpyc-venv: installed rpyc $RPYC_VERSION in $VENV" >&2
fi
echo "$(cd "$VENV" && pwd)/bin/python"
