#!/usr/bin/env bash
# Runs schemathesis against a simvault server it starts and stops itself, bounded in time.
#
#   deploy/schemathesis.sh [--bin target/debug/simvault] [--port 18600] [--max-time 180]
#
# The server gets a fresh data directory, one tenant and a client certificate holding every
# role; the run uses deploy/schemathesis.toml (which checks are off, and why) and writes its
# reports to $SCHEMATHESIS_REPORTS (default target/schemathesis). schemathesis comes from PyPI,
# pinned, into a virtual environment ($SCHEMATHESIS_VENV, default target/schemathesis-venv).
# Exit status: schemathesis's (0 when the run is clean).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug/simvault"
port=18600
max_time=180
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --max-time) max_time=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

version=4.32.5
venv=${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}
reports=${SCHEMATHESIS_REPORTS:-$root/target/schemathesis}
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
"$bin" init --data-dir "$data" >/dev/null
"$bin" tenant create acme --data-dir "$data" >/dev/null
"$bin" cert issue --tenant acme --role provisioner,support,operator,auditor,admin,auc,metrics \
    --name everyone --out-dir "$work" --data-dir "$data" >/dev/null

# Luhn relaxed: a check digit is the one rule a JSON Schema cannot state. Refusals are not
# limited per address: the run sends many refused credentials from one address on purpose.
SIMVAULT_ICCID_LUHN=relaxed SIMVAULT_AUTH_REFUSALS_PER_ADDRESS=1000000 \
    "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!

base="https://127.0.0.1:$port"
for _ in $(seq 1 100); do
    if curl -fsS --cacert "$data/keys/ca.pem" "$base/healthz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "the server did not start:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done

mkdir -p "$reports"
status=0
timeout $((max_time + 60)) "$venv/bin/st" --config-file "$root/deploy/schemathesis.toml" run \
    "$base/openapi.json" \
    --request-cert "$work/everyone.pem" --request-cert-key "$work/everyone.key" \
    --tls-verify "$data/keys/ca.pem" \
    --phases examples,coverage,fuzzing --max-time "$max_time" \
    --report junit,json --report-dir "$reports" --no-color || status=$?
exit "$status"
