#!/usr/bin/env bash
# restart.sh BIN DATA: serve DATA and at once run tokenize b100 three times (8 s each); report each run and when the filter was in use
# The page cache is what it is: read the file first (dd if=DATA/tokenvault.db of=/dev/null bs=4M) for a warm start.
BIN=$1; D=$2; export TOKENVAULT_TOKEN=root
. "$(dirname "$0")/scenarios.sh"
ports_free 127.0.0.1:47070 127.0.0.1:48080 127.0.0.1:48443
$BIN serve --dev --dev-root-token root --data $D --grpc-addr 127.0.0.1:47070 --http-addr 127.0.0.1:48080 --vendor-addr 127.0.0.1:48443 --log-level warn >$D.restart.log 2>&1 &
pid=$!; t0=$(date +%s.%N)
for i in $(seq 400); do curl -sf http://127.0.0.1:48080/healthz >/dev/null && break; sleep 0.05; done
( for i in $(seq 600); do b=$(curl -s -H "Authorization: Bearer root" http://127.0.0.1:48080/metrics | awk '/^tokenvault_store_key_filter_bytes/ {print $2}'); [ -n "$b" ] && [ "$b" != "0" ] && { echo "filter building/in use after $(echo "$(date +%s.%N) - $t0" | bc) s"; break; }; sleep 0.2; done ) &
for r in 1 2 3; do
  $BIN bench --addr 127.0.0.1:47070 --http-addr 127.0.0.1:48080 --protocol http --op tokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s --server-pid $pid -o json | python3 -c 'import sys,json; r=json.load(sys.stdin); print("run", sys.argv[1], round(r["items_per_s"]), r["server_cpu_us_per_item"], "p99", r["latency"]["p99_ms"])' $r
done
kill -TERM $pid; wait $pid; cat /proc/loadavg
