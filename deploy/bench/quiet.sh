#!/usr/bin/env bash
# quiet.sh OUT ROUNDS: bbolt bench 100/commit and tokenvault scenarios, interleaved per round.
set -euo pipefail
OUT=$1; ROUNDS=$2; W=${W:-/tmp/q}; mkdir -p $W; BIN=${BIN:-$W/tv}; BBOLT=$HOME/go/bin/bbolt; export TOKENVAULT_TOKEN=root
. "$(dirname "$0")/scenarios.sh"
run() {
  local name=$1
  rm -rf $W/d
  ports_free 127.0.0.1:37070 127.0.0.1:38080 127.0.0.1:38443
  $BIN serve --dev --dev-root-token root --data $W/d --grpc-addr 127.0.0.1:37070 \
    --http-addr 127.0.0.1:38080 --vendor-addr 127.0.0.1:38443 --log-level warn >$W/serve.log 2>&1 &
  local pid=$!
  ready $pid 127.0.0.1:38080 $W/serve.log
  local json; json=$($BIN bench --addr 127.0.0.1:37070 --http-addr 127.0.0.1:38080 $(args $name) --server-pid $pid -o json | tr -d '\n ')
  kill -TERM $pid; wait $pid || true
  printf '{"name":"%s","round":%d,"load1":%s,"result":%s}\n' "$name" "$ROUND" "$(cut -d' ' -f1 /proc/loadavg)" "$json" >>"$OUT"
}
for ROUND in $(seq "$ROUNDS"); do
  rm -f $W/bolt.db
  line=$($BBOLT bench --count 100000 --batch-size 100 --write-mode rnd --key-size 16 --value-size 100 --path $W/bolt.db 2>/dev/null | grep "^# Write" | tr "\t" " ")
  printf '{"name":"bbolt-100","round":%d,"load1":%s,"line":"%s"}\n' $ROUND "$(cut -d' ' -f1 /proc/loadavg)" "$line" >>$OUT
  rm -f $W/bolt.db
  for s in ${SCEN:-http-tok-b100 http-detok-b100 grpc-detok-b100 http-tok-b1 grpc-tok-b1}; do run $s; done
done
