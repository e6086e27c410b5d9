#!/usr/bin/env bash
# Server memory while large bodies arrive: starts a real `simvault serve`, has $N auditors
# each send a $MIB MiB import at once (HTTP/1.1, no `Expect: 100-continue`, so the whole body
# is pushed at the server), then one provisioner import of $ROWS rows, and prints the server's
# resident memory (VmRSS before, peak VmHWM after each phase, from /proc/<pid>/status).
# Bounded: each request has a time limit; the server is stopped at the end.
#
#   benches/body_memory.sh                      # debug binary (built if missing)
#   BIN=target/release/simvault N=4 MIB=64 ROWS=100000 benches/body_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-4}"
MIB="${MIB:-64}"
ROWS="${ROWS:-100000}"
PORT="${PORT:-18444}"
BIN="${BIN:-target/debug/simvault}"
[ -x "$BIN" ] || cargo build --bin simvault -q
WORK=$(mktemp -d)
D="$WORK/data"
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

$BIN init --data-dir "$D" >/dev/null
$BIN tenant create bench --data-dir "$D" >/dev/null
AUDITOR=$($BIN token --tenant bench --role auditor --sub auditor --data-dir "$D")
LOADER=$($BIN token --tenant bench --role provisioner --sub loader --data-dir "$D")

python3 - "$WORK" "$MIB" "$ROWS" <<'PY'
import json, sys
work, mib, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def row(n):
    return {"iccid": "8944%015d" % n, "imsi": "23415%010d" % n,
            "secrets": {"ki": "%032x" % n, "opc": "%032x" % (n * 7), "pin1": "1234", "puk1": "12345678"}}
def write(path, count=None, size=None):
    with open(path, "w") as f:
        f.write('{"sims": [')
        n, written = 0, 0
        while (count is not None and n < count) or (size is not None and written < size):
            text = (", " if n else "") + json.dumps(row(n))
            f.write(text); written += len(text); n += 1
        f.write("]}")
write(work + "/big.json", size=mib * 1024 * 1024 - 64)
write(work + "/rows.json", count=rows)
PY

SIMVAULT_LOG=error $BIN serve --data-dir "$D" --listen "127.0.0.1:$PORT" 2>"$WORK/server.log" &
SERVER=$!
URL="https://localhost:$PORT"
for _ in $(seq 1 100); do curl -sf --cacert "$D/keys/ca.pem" "$URL/healthz" >/dev/null && break; sleep 0.2; done

mem() { awk -v k="$1:" '$1 == k { printf "%.0f MiB", $2 / 1024 }' "/proc/$SERVER/status"; }
post() { # token, file
  curl -s -o /dev/null -w '%{http_code} (%{time_total} s) ' --max-time 300 --http1.1 -H 'Expect:' \
    --cacert "$D/keys/ca.pem" -H "Authorization: Bearer $1" -H 'content-type: application/json' \
    --data-binary "@$2" "$URL/v1/sims/bulk/import" || echo -n "curl-error "
}

echo "server started: VmRSS $(mem VmRSS), peak $(mem VmHWM)"
echo -n "$N auditors, $(du -m "$WORK/big.json" | cut -f1) MiB each, answers: "
CLIENTS=()
for _ in $(seq 1 "$N"); do post "$AUDITOR" "$WORK/big.json" & CLIENTS+=($!); done
wait "${CLIENTS[@]}"
echo
echo "after the refusals: VmRSS $(mem VmRSS), peak $(mem VmHWM)"
echo -n "1 provisioner, $ROWS rows ($(du -m "$WORK/rows.json" | cut -f1) MiB), answer: "
post "$LOADER" "$WORK/rows.json"
echo
echo "after the import was queued: VmRSS $(mem VmRSS), peak $(mem VmHWM)"
