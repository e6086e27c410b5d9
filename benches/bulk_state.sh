#!/usr/bin/env bash
# Bulk state change throughput: starts a real `simvault serve` (debug binary unless BIN is
# given, SQLite unless SIMVAULT_DATABASE_URL is set), loads $N SIMs with one bulk import,
# then moves all of them inventory → active with one `POST /v1/sims/bulk/state` and prints
# the task's items/s (from its 202 until it is completed). Stops the server at the end.
#
#   benches/bulk_state.sh                  # 500 SIMs
#   N=10000 BIN=target/release/simvault benches/bulk_state.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-500}"
PORT="${PORT:-18445}"
BIN="${BIN:-target/debug/simvault}"
[ -x "$BIN" ] || cargo build --bin simvault -q
WORK=$(mktemp -d)
D="$WORK/data"
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

$BIN init --data-dir "$D" >/dev/null
$BIN tenant create bench --data-dir "$D" >/dev/null
LOADER=$($BIN token --tenant bench --role provisioner --sub loader --data-dir "$D")
OPERATOR=$($BIN token --tenant bench --role operator --sub operator --data-dir "$D")

python3 - "$WORK" "$N" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
def iccid(k):
    body = "8944%014d" % k
    digits = [int(c) for c in body]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)
sims = [iccid(k) for k in range(1, n + 1)]
json.dump({"sims": [{"iccid": s} for s in sims]}, open(work + "/import.json", "w"))
json.dump({"sim_ids": sims, "state": "active", "reason": "bench"}, open(work + "/state.json", "w"))
PY

SIMVAULT_LOG=error $BIN serve --data-dir "$D" --listen "127.0.0.1:$PORT" 2>"$WORK/server.log" &
SERVER=$!
URL="https://localhost:$PORT"
for _ in $(seq 1 100); do curl -sf --cacert "$D/keys/ca.pem" "$URL/healthz" >/dev/null && break; sleep 0.2; done

call() { # method, token, path, [body file]
  curl -sf --max-time 300 --cacert "$D/keys/ca.pem" -X "$1" -H "Authorization: Bearer $2" \
    -H 'content-type: application/json' ${4:+--data-binary "@$4"} "$URL$3"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
wait_done() { # token, task id
  while :; do
    status=$(call GET "$1" "/v1/tasks/$2" | field status)
    case "$status" in completed|failed|cancelled) echo "$status"; return ;; esac
    sleep 0.05
  done
}

TASK=$(call POST "$LOADER" /v1/sims/bulk/import "$WORK/import.json" | field id)
echo "import of $N SIMs: $(wait_done "$LOADER" "$TASK")"

START=$(date +%s.%N)
TASK=$(call POST "$OPERATOR" /v1/sims/bulk/state "$WORK/state.json" | field id)
STATUS=$(wait_done "$OPERATOR" "$TASK")
END=$(date +%s.%N)
DONE=$(call GET "$OPERATOR" "/v1/tasks/$TASK" | field completed_items)
python3 -c "
s = $END - $START
print(f'bulk state of $N SIMs: $STATUS, $DONE changed in {s:.2f} s, {$DONE / s:.0f} items/s')"
