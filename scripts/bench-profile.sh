#!/usr/bin/env bash
# Instruction profiles (valgrind --tool=callgrind) of one workload of the comparison harness:
# the server and the client, each in its own process, over TCP loopback.
#
#   scripts/bench-profile.sh SYSTEM WORKLOAD [MILLIS]
#     SYSTEM:   netref | netref-dynamic | tarpc | raw
#     WORKLOAD: echo_fresh | echo_cached | callback | attr | inflight | bytes | typed | stream
#
# `netref-dynamic` differs from `netref` in the typed workload only: it calls the member by
# name instead of through the generated proxy. In the stream workload a "call" is an item.
#
# Writes target/bench-profile/{server,client}.SYSTEM.WORKLOAD.callgrind and prints the
# instructions per call of each side and the top functions (inclusive). Instruction counts do
# not depend on what else the machine is doing, so before/after comparisons of a fix are
# repeatable.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM="${1:?system: netref | netref-dynamic | tarpc | raw}"
WORKLOAD="${2:?workload: echo_fresh | echo_cached | callback | attr | inflight | bytes | typed | stream}"
MILLIS="${3:-5000}"
OUT="target/bench-profile"
mkdir -p "$OUT"

BIN=$(cargo bench --bench compare --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*compare-[^"]*\)".*/\1/p' | tail -1)
[ -x "$BIN" ] || { echo "bench-profile: cannot build the compare bench" >&2; exit 1; }

SRV="$OUT/server.$SYSTEM.$WORKLOAD.callgrind"
CLI="$OUT/client.$SYSTEM.$WORKLOAD.callgrind"
FIFO=$(mktemp -u)
mkfifo "$FIFO"
SRV_OUT=$(mktemp)
valgrind --tool=callgrind --callgrind-out-file="$SRV" "$BIN" --serve "$SYSTEM" \
  <"$FIFO" >"$SRV_OUT" 2>"$OUT/server.valgrind.log" &
SRV_PID=$!
exec 7>"$FIFO" # the server exits when this closes
for _ in $(seq 1 600); do
  grep -q LISTEN "$SRV_OUT" && break
  sleep 0.1
done
PORT=$(awk '/LISTEN/ {print $2}' "$SRV_OUT")
[ -n "$PORT" ] || { echo "bench-profile: the server did not start" >&2; exit 1; }
CALLS=$(valgrind --tool=callgrind --callgrind-out-file="$CLI" "$BIN" \
  --drive "$SYSTEM" "$PORT" "$WORKLOAD" "$MILLIS" 2>"$OUT/client.valgrind.log" | awk '{print $1}')
exec 7>&-
wait "$SRV_PID" || true
rm -f "$FIFO" "$SRV_OUT"
CALLS=$((CALLS + 1)) # --drive makes one untimed warm-up call first

for side in server client; do
  f="$OUT/$side.$SYSTEM.$WORKLOAD.callgrind"
  total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "== $side ($SYSTEM, $WORKLOAD): $total instructions, $CALLS calls, $((total / CALLS)) per call"
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null | sed -n '/file:function/,$p' | sed -n '3,40p'
done
