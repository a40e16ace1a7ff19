#!/usr/bin/env bash
# growth.sh OUT CHECKPOINT... : one server, one data directory; RUNS (default 3) measured runs of tokenize HTTP b100 x16
# at the empty store and at each checkpoint (tokens stored), filling between checkpoints (gRPC, batch 1000, 8 callers).
set -euo pipefail
OUT=$1; shift; W=${W:-/tmp/g}; mkdir -p $W; BIN=${BIN:-$W/tv}; export TOKENVAULT_TOKEN=root
D=$W/d; rm -rf $D
. "$(dirname "$0")/scenarios.sh"
ports_free 127.0.0.1:17270 127.0.0.1:18280 127.0.0.1:18643
$BIN serve --dev --dev-root-token root --data $D --grpc-addr 127.0.0.1:17270 --http-addr 127.0.0.1:18280 \
  --vendor-addr 127.0.0.1:18643 --log-level warn >$W/g.log 2>&1 &
pid=$!
ready $pid 127.0.0.1:18280 $W/g.log
tokens() { curl -s -H "Authorization: Bearer root" http://127.0.0.1:18280/metrics | awk '/^tokenvault_items_total\{.*op="tokenize".*outcome="ok"/ {s+=$2} END {printf "%d", s}'; }
measure() {
  for r in $(seq ${RUNS:-3}); do
    local t0; t0=$(tokens)
    local json; json=$($BIN bench --addr 127.0.0.1:17270 --http-addr 127.0.0.1:18280 --protocol http --op tokenize --batch 100 \
      --concurrency 16 --duration 8s --warmup 1s --server-pid $pid -o json | tr -d '\n ')
    printf '{"point":"%s","run":%d,"tokens_before":%s,"time":"%s","load1":%s,"du_kb":%s,"result":%s}\n' "$1" $r "$t0" "$(date -u +%T)" \
      "$(cut -d' ' -f1 /proc/loadavg)" "$(du -sk $D | cut -f1)" "$json" >>$OUT
  done
}
measure empty
for T in "$@"; do
  left=$(( (T - $(tokens)) / 1000 ))
  t0=$(date +%s)
  if (( left > 0 )); then
    $BIN bench --addr 127.0.0.1:17270 --protocol grpc --op tokenize --batch 1000 --concurrency 8 --requests $left --warmup 0s --timeout 5m -o json >/dev/null
  fi
  printf '{"fill_to":%s,"fill_s":%s,"time":"%s","load1":%s}\n' $T $(( $(date +%s) - t0 )) "$(date -u +%T)" "$(cut -d' ' -f1 /proc/loadavg)" >>$OUT
  measure "$T"
done
final=$(tokens)
kill -TERM $pid; wait $pid || true
printf '{"point":"stopped","tokens":%s,"du_kb":%s,"apparent_bytes":%s}\n' "$final" "$(du -sk $D | cut -f1)" "$(du -sb $D | cut -f1)" >>$OUT
