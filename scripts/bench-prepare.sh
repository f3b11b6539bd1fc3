#!/usr/bin/env bash
# Prepares the peers of the comparison harness (`cargo bench --bench compare`):
# a Python virtualenv under target/ with RPyC 6.0.2 from the package index
# (see scripts/rpyc-venv.sh, which the RPyC interoperability tests use too).
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash scripts/rpyc-venv.sh | tail -n 1)"
echo "bench-prepare: rpyc $("$python" -c 'import rpyc; print(rpyc.__version__)') at $python"
