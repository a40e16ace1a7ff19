#!/usr/bin/env bash
# growth-pair.sh BIN BIGDATA ROUNDS OUT (W: work directory, default /tmp/gp): the ratio of tokenize b100 on a big store to an empty one under the same noise.
# The big store's server runs throughout (after its key filter is built and one warm-up run); each round runs
# once on a fresh empty store (a new server and data directory) and once on the big store, the order alternating.
# BIGDATA is a data directory filled beforehand (e.g. by growth.sh, which leaves its directory).
# Each run also reports the server CPU until it is idle again: the merges a run leaves behind.
set -euo pipefail
BIN=$1; BIG=$2; ROUNDS=$3; OUT=$4; W=${W:-/tmp/gp}; mkdir -p $W; export TOKENVAULT_TOKEN=root
. "$(dirname "$0")/scenarios.sh"
ports_free 127.0.0.1:47070 127.0.0.1:48080 127.0.0.1:48443 127.0.0.1:37070 127.0.0.1:38080 127.0.0.1:38443
serve() { $BIN serve --dev --dev-root-token root --data $1 --grpc-addr 127.0.0.1:$2 --http-addr 127.0.0.1:$3 --vendor-addr 127.0.0.1:$4 --log-level warn >$1.log 2>&1 & PID=$!; }
up() { for i in $(seq 400); do curl -sf http://127.0.0.1:$1/healthz >/dev/null && return; sleep 0.05; done; }
# idle PID: wait (at most 60 s) until PID used under 2 % of a core over half a second (a big store's
# merges go on after its run: they must not fall into the next run, on the other store).
# Three quiet half-seconds in a row: longer than the one-second merge interval.
idle() { local q=0; for i in $(seq 120); do a=$(awk '{print $14+$15}' /proc/$1/stat); sleep 0.5; b=$(awk '{print $14+$15}' /proc/$1/stat); if (( b - a <= 1 )); then q=$((q+1)); (( q == 3 )) && return; else q=0; fi; done; }
run() { # PID GRPC HTTP LABEL ROUND: also the server CPU until it is idle again after the run (its merges)
  local t0 t1 e0 e1; t0=$(awk '{print $14+$15}' /proc/$1/stat)
  $BIN bench --addr 127.0.0.1:$2 --http-addr 127.0.0.1:$3 --protocol http --op tokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s --server-pid $1 -o json >$W/run.json
  e0=$(date +%s.%N); idle $1; e1=$(date +%s.%N); t1=$(awk '{print $14+$15}' /proc/$1/stat)
  python3 -c 'import sys,json; r=json.load(open(sys.argv[5])); t=int(sys.argv[3]); print(json.dumps({"store":sys.argv[1],"round":int(sys.argv[2]),"items_per_s":r["items_per_s"],"cpu_us":r["server_cpu_us_per_item"],"cpu_until_idle_us":t*1e4/r["total_items"],"drain_s":float(sys.argv[4])}))' $4 $5 $((t1 - t0)) $(echo "$e1 - $e0" | bc) $W/run.json >>$OUT
}
serve $BIG 47070 48080 48443; bigpid=$PID; up 48080
for i in $(seq 600); do b=$(curl -s -H "Authorization: Bearer root" http://127.0.0.1:48080/metrics | awk '/^tokenvault_store_key_filter_bytes/ {print $2}'); [ -n "$b" ] && [ "$b" != "0" ] && break; sleep 0.1; done
sleep 10
run $bigpid 47070 48080 warm 0
for r in $(seq $ROUNDS); do
  rm -rf $W/empty; serve $W/empty 37070 38080 38443; epid=$PID; up 38080
  if (( r % 2 )); then run $epid 37070 38080 empty $r; run $bigpid 47070 48080 big $r
  else run $bigpid 47070 48080 big $r; run $epid 37070 38080 empty $r; fi
  kill -TERM $epid; wait $epid
done
kill -TERM $bigpid; wait $bigpid
