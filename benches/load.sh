#!/usr/bin/env bash
# Load test: seeds SIMs, starts the release server, and measures /healthz (baseline), GET by id
# over mTLS and search over mTLS with oha, 32 connections each, against the same server in one
# run. Bounded: every oha run stops after $DURATION; the server is stopped at the end.
#
# Endpoints: /healthz (baseline), GET /v1/sims/{id}, GET /v1/sims?search=…, and
# GET /v1/sims/{id}/secrets?fields=ki,opc (decrypting through the key hierarchy, audited), and
# POST /v1/sims/{id}/auth-vectors with count=32 (the auc role over mTLS); and the API profiles
# beside their native equivalents: the telco read GET /v1/sim/physical/{iccid} (the SIM with
# every secret the caller may read: here Ki and OPc, each decided, decrypted and audited) against
# the native secret read, and the carrier list GET /v2/sim_cards against the native
# GET /v1/sims, both 20 SIMs a page.
#
#   SIMS=100000 DURATION=15s benches/load.sh
#   SIMVAULT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test benches/load.sh
#   SIMVAULT_BIN=../old/target/release/simvault SEED_BIN=../old/target/release/examples/seed benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIMS="${SIMS:-100000}"
DURATION="${DURATION:-15s}"
CONNS="${CONNS:-32}"
PORT="${PORT:-18443}"
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }

. benches/setup.sh
bench_workdir
D="$WORK/data"
bench_binaries

if [ -n "${SIMVAULT_DATABASE_URL:-}" ]; then
  # A fresh database of its own, so the run measures exactly the seeded rows.
  base="${SIMVAULT_DATABASE_URL%/*}"
  psql "$SIMVAULT_DATABASE_URL" -qc "DROP DATABASE IF EXISTS simvault_bench" -c "CREATE DATABASE simvault_bench"
  export SIMVAULT_DATABASE_URL="$base/simvault_bench"
  STORE=postgres
else
  STORE=sqlite
fi

bench_data_dir "$D" "$SIMS" provisioner:loader auc:hss

SIMVAULT_LOG=warn $BIN serve --data-dir "$D" --listen "127.0.0.1:$PORT" &
SERVER=$!
URL="https://localhost:$PORT"
TLS=(--cacert "$D/keys/ca.pem")
MTLS=(--cacert "$D/keys/ca.pem" --cert "$WORK/loader.pem" --key "$WORK/loader.key")
bench_wait_ready 60

# The SIM to read, given a Ki and OPc.
bench_secret_sim "$SIMS"
# An MSISDN fragment that names one SIM: the trigram index has to find it among all of them.
TERM="$(printf '77%08d' $((SIMS / 3)))"

run() { # name, url, tls args...
  local name=$1 url=$2; shift 2
  oha --no-tui --output-format json -z "$DURATION" -c "$CONNS" "$@" "$url" > "$WORK/$name.json"
}
run healthz "$URL/healthz" "${TLS[@]}"
run get_by_id "$URL/v1/sims/$ID" "${MTLS[@]}"
run search "$URL/v1/sims?search=$TERM" "${MTLS[@]}"
run secrets "$URL/v1/sims/$ID/secrets?fields=ki,opc" "${MTLS[@]}"
ICCID=$(curl -sf "${MTLS[@]}" "$URL/v1/sims/$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["iccid"])')
# Each profile against its native twin measured on both sides of it (secret read, telco,
# secret read; list, carrier, carrier, list): every secret read appends to the audit log and the
# store grows as the run goes on, so measuring each once in a fixed order favours the first.
run telco_get "$URL/v1/sim/physical/$ICCID" "${MTLS[@]}"
run secrets_2 "$URL/v1/sims/$ID/secrets?fields=ki,opc" "${MTLS[@]}"
run list "$URL/v1/sims?page_size=20" "${MTLS[@]}"
run carrier_list "$URL/v2/sim_cards?page%5Bsize%5D=20" "${MTLS[@]}"
run carrier_list_2 "$URL/v2/sim_cards?page%5Bsize%5D=20" "${MTLS[@]}"
run list_2 "$URL/v1/sims?page_size=20" "${MTLS[@]}"
AUC=(--cacert "$D/keys/ca.pem" --cert "$WORK/hss.pem" --key "$WORK/hss.key")
run vectors32 "$URL/v1/sims/$ID/auth-vectors" "${AUC[@]}" -m POST -H 'content-type: application/json' -d '{"count":32}'

python3 - "$WORK" "$STORE" "$SIMS" <<'PY'
import json, sys, os
work, store, sims = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for name in ["healthz", "get_by_id", "search", "secrets", "telco_get", "secrets_2", "list", "carrier_list", "carrier_list_2", "list_2", "vectors32"]:
    d = json.load(open(os.path.join(work, name + ".json")))
    s = d["summary"]
    codes = d.get("statusCodeDistribution", {})
    rows[name] = (s["requestsPerSec"], d["latencyPercentiles"]["p99"] * 1000, s["successRate"], codes)
base = rows["healthz"][0]
print(f"\nstore={store} sims={sims} connections=32")
print(f"{'endpoint':<12} {'req/s':>10} {'p99 ms':>8} {'vs healthz':>11}  status codes")
for name, (rps, p99, ok, codes) in rows.items():
    print(f"{name:<12} {rps:>10.0f} {p99:>8.2f} {rps / base:>10.2f}x  {codes}")
print(f"authentication vectors/s through the API (count=32): {rows['vectors32'][0] * 32:.0f}")
print("API profiles against their native equivalents (goal >= 0.9):")
# telco runs once between two native runs (A B A); the lists twice each (A B B A).
def pair(a, b):
    return (rows[a][0] + rows[a + "_2"][0]) / (rows[b][0] + rows[b + "_2"][0])
print(f"  telco GET /v1/sim/physical/{{iccid}} (Ki, OPc) / native secret read: {2 * rows['telco_get'][0] / (rows['secrets'][0] + rows['secrets_2'][0]):.2f}")
print(f"  carrier GET /v2/sim_cards / native GET /v1/sims:                    {pair('carrier_list', 'list'):.2f}")
PY
