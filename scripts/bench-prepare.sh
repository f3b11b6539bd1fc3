#!/usr/bin/env bash
# Prepares the peers of the comparison harness (`cargo bench --bench compare`):
# a Python virtualenv under target/ with RPyC 6.0.2 from the package index.
# Idempotent: a venv that already has rpyc 6.0.2 is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${NETREF_BENCH_VENV:-target/bench-venv}"
PYTHON="${PYTHON:-python3}"
RPYC_VERSION="6.0.2"

if [ -x "$VENV/bin/python" ] &&
  "$VENV/bin/python" -c "import rpyc, sys; sys.exit(rpyc.__version__ != '$RPYC_VERSION')" 2>/dev/null; then
  echo "bench-prepare: $VENV already has rpyc $RPYC_VERSION"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "rpyc==$RPYC_VERSION"
"$VENV/bin/python" -c "import rpyc; print('bench-prepare: rpyc', rpyc.__version__, 'in $VENV')"
