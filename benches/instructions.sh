#!/usr/bin/env bash
# Instructions per request: runs the release server under `valgrind --tool=callgrind` and counts
# the instructions it executes (Ir, every thread) for a fixed number of requests of one kind,
# sent one after another over one keep-alive connection. Unlike requests/s this does not depend
# on how busy the machine is, so two builds can be compared on a noisy machine.
#
# For each request kind the server is started afresh (on a copy of the same seeded data
# directory) once per entry of COUNTS; each run sends WARMUP + K requests on one connection,
# leaves the server idle until WINDOW seconds after it first answered, and stops it with
# SIGTERM (callgrind writes its totals on exit). Per request:
#   (Ir(K_max) - Ir(K_min)) / (K_max - K_min)
# which removes startup, shutdown, the TLS handshake and the warm-up requests. Every run of a
# kind lasts the same WINDOW so that the background workers' timed ticks (outbox poll,
# refusal sweeper, task poll, connection watchdog) are the same in each and cancel as well.
#
# Kinds: healthz (GET /healthz, TLS without client certificate), get_by_id (GET /v1/sims/{id},
# mTLS), secrets (GET /v1/sims/{id}/secrets?fields=ki,opc, mTLS: decrypts through the key
# hierarchy and writes an audit record).
#
#   benches/instructions.sh
#   COUNTS="0 200 400" KINDS="secrets" benches/instructions.sh
#   SIMVAULT_BIN=../old/target/release/simvault SEED_BIN=../old/target/release/examples/seed benches/instructions.sh
#
# SQLite only: with PostgreSQL the database's own work would happen in another process,
# which callgrind does not count.
set -euo pipefail
cd "$(dirname "$0")/.."

SIMS="${SIMS:-2000}"
COUNTS="${COUNTS:-0 200}"
KINDS="${KINDS:-healthz get_by_id secrets}"
WARMUP="${WARMUP:-10}"
PORT="${PORT:-18444}"
# Tokio worker threads of the server: fixed so that runs on machines with other core counts
# execute the same scheduling code.
WORKERS="${WORKERS:-2}"
# The identity cache (SIMVAULT_IDENTITY_CACHE_MS) keeps a client's resolution for up to 1 s of
# wall time; under valgrind a request takes a large part of that, so with the cache the share of
# requests that look the identity up would depend on the machine's speed. Off by default: every
# mTLS request then does its lookup, the same in every run.
IDENTITY_CACHE_MS="${IDENTITY_CACHE_MS:-0}"
# Seconds to wait for the server under valgrind to answer its first request.
READY_TIMEOUT="${READY_TIMEOUT:-600}"
# Seconds from the server's first answer to SIGTERM, the same for every run of a kind. Empty:
# measured from the largest count's run (run first), plus a margin.
WINDOW="${WINDOW:-}"
# A directory to keep the callgrind files in (for callgrind_annotate); by default they go.
KEEP="${KEEP:-}"
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }
[ "$WARMUP" -ge 1 ] || { echo "WARMUP must be at least 1 (it opens the connection)" >&2; exit 1; }

. benches/setup.sh
bench_workdir
D0="$WORK/seeded"
D="$WORK/data"
unset SIMVAULT_DATABASE_URL
bench_binaries

bench_data_dir "$D0" "$SIMS" provisioner:loader

URL="https://localhost:$PORT"
TLS=(--cacert "$D0/keys/ca.pem")
MTLS=(--cacert "$D0/keys/ca.pem" --cert "$WORK/loader.pem" --key "$WORK/loader.key")

stop_server() {
  kill -TERM "$SERVER"
  local rc=0
  wait "$SERVER" || rc=$?
  SERVER=
  [ "$rc" -eq 0 ] || { echo "server exited with status $rc" >&2; return 1; }
}

# The SIM to read: picked and given a Ki and OPc as benches/load.sh does, on a server without
# valgrind, before the measured runs (so every run starts from the same data).
SIMVAULT_LOG=warn $BIN serve --data-dir "$D0" --listen "127.0.0.1:$PORT" 2>"$WORK/setup.log" &
SERVER=$!
bench_wait_ready 60
bench_secret_sim "$SIMS"
ICCID=$(curl -sf "${MTLS[@]}" "$URL/v1/sims/$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["iccid"])')
stop_server

target() { # kind -> path and client arguments
  case "$1" in
    healthz) echo "/healthz" ;;
    get_by_id) echo "/v1/sims/$ID" ;;
    secrets) echo "/v1/sims/$ID/secrets?fields=ki,opc" ;;
    # The API profiles beside their native equivalents (benches/load.sh measures the same).
    telco_get) echo "/v1/sim/physical/$ICCID" ;;
    list) echo "/v1/sims?page_size=20" ;;
    carrier_list) echo "/v2/sim_cards?page%5Bsize%5D=20" ;;
    *) echo "unknown kind $1" >&2; return 1 ;;
  esac
}

# One measured run: sets IR (the server's instructions, less SPIN: quanta's calibration),
# TOOK (seconds the requests took) and WARNS (lines the server logged: each costs
# instructions, e.g. sqlx's slow-statement warnings when the disk is slow, so a count that
# differs between runs explains a difference in IR).
measure() { # kind count window(empty: none)
  local kind=$1 count=$2 window=$3 path out t0 t1 now
  path=$(target "$kind")
  rm -rf "$D"
  cp -a "$D0" "$D"
  out="$WORK/callgrind.$kind.$count"
  SIMVAULT_LOG=warn TOKIO_WORKER_THREADS="$WORKERS" SIMVAULT_IDENTITY_CACHE_MS="$IDENTITY_CACHE_MS" \
    valgrind --tool=callgrind --callgrind-out-file="$out" --log-file="$out.log" \
    $BIN serve --data-dir "$D" --listen "127.0.0.1:$PORT" 2>"$out.server" &
  SERVER=$!
  bench_wait_ready "$READY_TIMEOUT"
  t0=$SECONDS
  local args=("${TLS[@]}")
  [ "$kind" = healthz ] || args=("${MTLS[@]}")
  # One curl, one connection (HTTP/1.1 keep-alive), WARMUP + count requests in turn.
  local cfg="$WORK/curl.cfg" i
  : >"$cfg"
  for ((i = 0; i < WARMUP + count; i++)); do
    printf 'url = "%s%s"\noutput = "/dev/null"\n' "$URL" "$path" >>"$cfg"
  done
  curl -s --http1.1 "${args[@]}" -K "$cfg" -w '%{http_code} %{num_connects}\n' >"$WORK/codes"
  t1=$SECONDS
  local answered ok connects
  answered=$(wc -l <"$WORK/codes")
  ok=$(grep -c '^200 ' "$WORK/codes" || true)
  connects=$(awk '{ n += $2 } END { print n }' "$WORK/codes")
  if [ "$answered" -ne $((WARMUP + count)) ] || [ "$ok" -ne "$answered" ] || [ "$connects" -ne 1 ]; then
    echo "$kind x$count: $answered answers, $ok with 200, $connects connections" >&2
    return 1
  fi
  if [ -n "$window" ]; then
    now=$SECONDS
    if [ $((now - t0)) -gt "$window" ]; then
      echo "warning: $kind x$count took $((now - t0)) s, more than the window of $window s" >&2
    fi
    while [ $((SECONDS - t0)) -lt "$window" ]; do sleep 0.2; done
  fi
  stop_server
  local ir
  # totals: every thread's Ir, as valgrind's "Collected" (summary: may leave out a few).
  ir=$(awk '/^totals:/ { t = $2 } /^summary:/ { s = $2 } END { print (t != "" ? t : s) }' "$out")
  [ -n "$ir" ] || { echo "no totals in $out" >&2; return 1; }
  # quanta (the metrics clock) calibrates its TSC clock once by spinning for a stretch of wall
  # time: a few million instructions under valgrind, varying with the machine's load, so they
  # are taken out (callgrind's --toggle-collect cannot be used: it stops counting for good).
  local spin
  spin=$(callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
    awk '!n && /:quanta::Calibration::calibrate \[/ { gsub(",", "", $1); print $1; n = 1 }')
  SPIN=${spin:-0}
  ir=$((ir - SPIN))
  [ -z "$KEEP" ] || { mkdir -p "$KEEP"; cp "$out" "$out.log" "$out.server" "$KEEP/"; }
  WARNS=$(grep -c . "$out.server" || true)
  IR=$ir
  TOOK=$((t1 - t0))
}

read -r -a counts <<<"$(tr ' ' '\n' <<<"$COUNTS" | sort -n | tr '\n' ' ')"
lo=${counts[0]}
hi=${counts[${#counts[@]} - 1]}
[ "$hi" -gt "$lo" ] || { echo "COUNTS needs two different counts" >&2; exit 1; }

echo "# bin=$BIN sims=$SIMS warmup=$WARMUP workers=$WORKERS identity_cache_ms=$IDENTITY_CACHE_MS counts=${counts[*]}"
echo "# kind count Ir request_seconds window_seconds server_log_lines calibration_Ir_taken_out"
declare -A ir_of
for kind in $KINDS; do
  window=$WINDOW
  order=("$hi")
  for c in "${counts[@]}"; do [ "$c" = "$hi" ] || order+=("$c"); done
  for c in "${order[@]}"; do
    if [ -z "$window" ]; then
      measure "$kind" "$c" ""
      window=$((TOOK + TOOK / 5 + 10))
      # The first run ends as soon as its requests are answered; it is repeated within the
      # window so that its idle time matches the others'.
    fi
    measure "$kind" "$c" "$window"
    ir_of[$kind.$c]=$IR
    echo "$kind $c $IR $TOOK $window $WARNS $SPIN"
  done
done

echo "# per request: (Ir(count) - Ir($lo)) / (count - $lo)"
for kind in $KINDS; do
  line="$kind"
  for c in "${counts[@]}"; do
    [ "$c" = "$lo" ] && continue
    line+=" $(((ir_of[$kind.$c] - ir_of[$kind.$lo]) / (c - lo)))@$c"
  done
  echo "$line"
done
