#!/usr/bin/env bash
# cmp.sh OUT ROUNDS (BEFORE=bin AFTER=bin; SCEN="..."): per round, bbolt bench 100/commit, then every scenario on both binaries
# (order alternating by round); a fresh `serve --dev` on an empty directory for every run.
# With AFTER empty (AFTER= ), one binary: what quiet.sh runs.
set -euo pipefail
OUT=$1; ROUNDS=$2; W=${W:-/tmp/q}; mkdir -p $W; BBOLT=$HOME/go/bin/bbolt; export TOKENVAULT_TOKEN=root
BEFORE=${BEFORE:-$W/tv}; AFTER=${AFTER-$W/tv-after}
. "$(dirname "$0")/scenarios.sh"
run() {
  local bin=$1 name=$2 B
  if [ "$bin" = before ]; then B=$BEFORE; else B=$AFTER; fi
  rm -rf $W/d
  ports_free 127.0.0.1:37070 127.0.0.1:38080 127.0.0.1:38443
  $B serve --dev --dev-root-token root --data $W/d --grpc-addr 127.0.0.1:37070 \
    --http-addr 127.0.0.1:38080 --vendor-addr 127.0.0.1:38443 --log-level warn >$W/serve.log 2>&1 &
  local pid=$!
  ready $pid 127.0.0.1:38080 $W/serve.log
  local json; json=$($B bench --addr 127.0.0.1:37070 --http-addr 127.0.0.1:38080 $(args $name) --server-pid $pid -o json | tr -d '\n ')
  kill -TERM $pid; wait $pid || true
  printf '{"bin":"%s","name":"%s","round":%d,"time":"%s","load1":%s,"result":%s}\n' "$bin" "$name" "$ROUND" "$(date -u +%T)" "$(cut -d' ' -f1 /proc/loadavg)" "$json" >>"$OUT"
}
for ROUND in $(seq "$ROUNDS"); do
  rm -f $W/bolt.db
  line=$($BBOLT bench --count 100000 --batch-size 100 --write-mode rnd --key-size 16 --value-size 100 --path $W/bolt.db 2>/dev/null | grep "^# Write" | tr "\t" " ")
  printf '{"name":"bbolt-100","round":%d,"time":"%s","load1":%s,"line":"%s"}\n' $ROUND "$(date -u +%T)" "$(cut -d' ' -f1 /proc/loadavg)" "$line" >>$OUT
  rm -f $W/bolt.db
  if [ -z "$AFTER" ]; then order=before; elif (( ROUND % 2 )); then order="before after"; else order="after before"; fi
  for s in ${SCEN:-http-tok-b100 http-detok-b100 http-tok-b1 grpc-tok-b1}; do for b in $order; do run $b $s; done; done
done
