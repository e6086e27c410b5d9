#!/usr/bin/env bash
# Inventory export throughput and server memory: seeds $SIMS SIMs (straight through the store,
# examples/seed.rs), starts a real `simvault serve`, exports the whole inventory as NDJSON and
# as CSV over GET /v1/sims/export as an operator, and prints SIMs per second and the server's
# resident memory (VmRSS before, peak VmHWM after each export, from /proc/<pid>/status). A
# streamed export holds a page at a time, so the peak should not grow with $SIMS.
# Bounded: each export has a time limit; the server is stopped at the end.
#
#   SIMS=2000 benches/export.sh                  # a dry run
#   benches/export.sh                            # 100,000 SIMs, debug binaries (built if missing)
#   BIN=target/release/simvault SEED=target/release/examples/seed benches/export.sh
#   SIMVAULT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/simvault_bench benches/export.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIMS="${SIMS:-100000}"
PORT="${PORT:-18445}"
BIN="${BIN:-target/debug/simvault}"
SEED="${SEED:-target/debug/examples/seed}"
[ -x "$BIN" ] && [ -x "$SEED" ] || cargo build --bin simvault --example seed -q
WORK=$(mktemp -d)
D="$WORK/data"
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

$BIN init --data-dir "$D" >/dev/null
$BIN tenant create bench --data-dir "$D" >/dev/null
echo "seeding $SIMS SIMs..." >&2
"$SEED" "$D" bench "$SIMS" >&2
OPERATOR=$($BIN token --tenant bench --role operator --sub exporter --data-dir "$D")

SIMVAULT_LOG=error $BIN serve --data-dir "$D" --listen "127.0.0.1:$PORT" 2>"$WORK/server.log" &
SERVER=$!
URL="https://localhost:$PORT"
for _ in $(seq 1 100); do curl -sf --cacert "$D/keys/ca.pem" "$URL/healthz" >/dev/null && break; sleep 0.2; done

mem() { awk -v k="$1:" '$1 == k { printf "%.0f MiB", $2 / 1024 }' "/proc/$SERVER/status"; }
echo "store=${SIMVAULT_DATABASE_URL:+postgres}${SIMVAULT_DATABASE_URL:-sqlite} sims=$SIMS"
echo "server started: VmRSS $(mem VmRSS), peak $(mem VmHWM)"
for format in ndjson csv; do
  out="$WORK/sims.$format"
  start=$(date +%s.%N)
  code=$(curl -s -o "$out" -w '%{http_code}' --max-time 900 --cacert "$D/keys/ca.pem" \
    -H "Authorization: Bearer $OPERATOR" "$URL/v1/sims/export?format=$format" || echo "curl-error")
  end=$(date +%s.%N)
  rows=$(wc -l < "$out")
  [ "$format" = csv ] && rows=$((rows - 1))
  python3 - "$format" "$code" "$rows" "$start" "$end" "$(du -k "$out" | cut -f1)" <<'PY'
import sys
fmt, code, rows, start, end, kib = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
secs = end - start
print(f"{fmt:<7} HTTP {code}: {rows} SIMs, {kib / 1024:.1f} MiB in {secs:.2f} s = {rows / secs:,.0f} SIMs/s", end="")
PY
  echo ", server peak $(mem VmHWM)"
  [ "$rows" -eq "$SIMS" ] || { echo "expected $SIMS SIMs in the $format export" >&2; exit 1; }
done
