#!/usr/bin/env bash
# quiet.sh OUT ROUNDS (BIN=bin; SCEN="..."): bbolt bench 100/commit and tokenvault scenarios on one
# binary, interleaved per round: cmp.sh with a single binary.
set -euo pipefail
W=${W:-/tmp/q}
BEFORE=${BIN:-$W/tv} AFTER= SCEN=${SCEN:-http-tok-b100 http-detok-b100 grpc-detok-b100 http-tok-b1 grpc-tok-b1} \
  exec bash "$(dirname "$0")/cmp.sh" "$@"
