#!/usr/bin/env bash
# floor.sh OUT ROUNDS (BIN=tokenvault binary): one item per request over HTTP, per round on
# httpfloor (net/http + encoding/json alone: deploy/bench/httpfloor) and on `serve --dev`,
# in alternating order; a fresh data directory for every tokenvault run. OUT gets one JSON line
# per run, with the server's CPU per request (--server-pid).
set -euo pipefail
OUT=$1; ROUNDS=$2; W=${W:-/tmp/q}; mkdir -p $W; export TOKENVAULT_TOKEN=root
BIN=${BIN:-$W/tv}; FLOOR=$W/httpfloor
. "$(dirname "$0")/scenarios.sh"
(cd "$(dirname "$0")/httpfloor" && go build -o $FLOOR .)
run() {
  local what=$1 pid
  ports_free 127.0.0.1:37070 127.0.0.1:38080 127.0.0.1:38443
  if [ "$what" = floor ]; then
    $FLOOR -addr 127.0.0.1:38080 -token root >$W/serve.log 2>&1 &
  else
    rm -rf $W/d
    $BIN serve --dev --dev-root-token root --data $W/d --grpc-addr 127.0.0.1:37070 \
      --http-addr 127.0.0.1:38080 --vendor-addr 127.0.0.1:38443 --log-level warn >$W/serve.log 2>&1 &
  fi
  pid=$!
  ready $pid 127.0.0.1:38080 $W/serve.log
  local json; json=$($BIN bench --addr 127.0.0.1:37070 --http-addr 127.0.0.1:38080 $(args http-tok-b1) --server-pid $pid -o json | tr -d '\n ')
  kill -TERM $pid; wait $pid || true
  printf '{"bin":"%s","name":"http-tok-b1","round":%d,"time":"%s","load1":%s,"result":%s}\n' "$what" "$ROUND" "$(date -u +%T)" "$(cut -d' ' -f1 /proc/loadavg)" "$json" >>"$OUT"
}
for ROUND in $(seq "$ROUNDS"); do
  if (( ROUND % 2 )); then order="floor tokenvault"; else order="tokenvault floor"; fi
  for w in $order; do run $w; done
done
