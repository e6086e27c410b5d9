#!/usr/bin/env bash
# The baseline for `cargo bench --bench milenage`: Debian libosmocore's osmo_auth_gen_vec
# (Milenage, UMTS vectors) on one core, same K/OPc, bounded at 2,000,000 vectors.
#   apt-get install libosmocore-dev && benches/osmocom/run.sh
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
gcc -O2 osmo_auth_bench.c -o "$out" $(pkg-config --cflags --libs libosmogsm libosmocore)
"$out"
