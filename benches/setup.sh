# Shared setup of the server benchmarks (sourced by benches/load.sh and benches/instructions.sh,
# not run on its own): which binaries to measure, a data directory with a tenant, client
# certificates and seeded SIMs, and one SIM given a Ki and OPc to read back.
#
# The caller has `set -euo pipefail` and is in the repository root. SIMVAULT_BIN and SEED_BIN measure another build (e.g. an older commit's,
# for a before/after comparison on one machine); by default this tree's release build.

# WORK, a fresh temporary directory, removed on exit with the server ($SERVER) stopped.
bench_workdir() {
  WORK=$(mktemp -d)
  trap 'if [ -n "${SERVER:-}" ]; then kill "$SERVER" 2>/dev/null; fi; wait 2>/dev/null; rm -rf "$WORK"' EXIT
}

bench_binaries() {
  if [ -z "${SIMVAULT_BIN:-}" ]; then
    cargo build --release --bin simvault --example seed -q
  fi
  BIN="${SIMVAULT_BIN:-target/release/simvault}"
  SEED="${SEED_BIN:-target/release/examples/seed}"
}

# A data directory with tenant `bench`, a client certificate per "role:name" argument (written to
# $WORK/<name>.pem and .key), and $2 seeded SIMs.
bench_data_dir() { # dir sims role:name...
  local dir=$1 sims=$2
  shift 2
  $BIN init --data-dir "$dir" >/dev/null
  $BIN tenant create bench --data-dir "$dir" >/dev/null
  local who
  for who in "$@"; do
    $BIN cert issue --tenant bench --role "${who%%:*}" --name "${who#*:}" --out-dir "$WORK" \
      --data-dir "$dir" >/dev/null
  done
  echo "seeding $sims SIMs (${STORE:-sqlite})..." >&2
  "$SEED" "$dir" bench "$sims" >&2
}

# Sets ID to the SIM in the middle of the ICCID order and gives it a Ki and OPc, through the
# running server at $URL with the client arguments in MTLS; fails if the secret read then does
# not answer with the Ki.
bench_secret_sim() { # sims
  ID=$(curl -sf "${MTLS[@]}" "$URL/v1/sims?page_size=1&sort_by=iccid&sort_order=asc&page=$(($1 / 2))" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
  curl -sf "${MTLS[@]}" -X PUT -H 'content-type: application/json' \
    -d '{"ki":"465b5ce8b199b49faa5f0a2ee238a6bc","opc":"cd63cb71954a9f4e48a5994e37a02baf"}' \
    "$URL/v1/sims/$ID/secrets" >/dev/null
  case "$(curl -sf "${MTLS[@]}" "$URL/v1/sims/$ID/secrets?fields=ki,opc")" in
    *'"ki"'*) ;;
    *) echo "the secret read does not answer with a Ki" >&2; return 1 ;;
  esac
}

# Waits until the server (pid $SERVER) answers /healthz at $URL with the arguments in TLS.
bench_wait_ready() { # timeout in seconds
  local deadline=$((SECONDS + $1))
  until curl -sf "${TLS[@]}" "$URL/healthz" >/dev/null 2>&1; do
    kill -0 "$SERVER" 2>/dev/null || { echo "server exited before answering" >&2; return 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "server did not answer within $1 s" >&2; return 1; }
    sleep 0.2
  done
}
