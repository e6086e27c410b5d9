#!/usr/bin/env bash
# Secret-read throughput with the root key in a file and in a SoftHSM2 token, same run
# (cargo bench --bench hsm). Needs `apt-get install softhsm2`. Stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > "$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
softhsm2-util --init-token --free --label simvault-bench --pin 4711 --so-pin 123456 >/dev/null
export SIMVAULT_PKCS11_MODULE=${SIMVAULT_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
export SIMVAULT_PKCS11_TOKEN_LABEL=simvault-bench SIMVAULT_PKCS11_PIN=4711
cargo bench --bench hsm
