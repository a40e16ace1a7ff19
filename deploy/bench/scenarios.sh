# Sourced by quiet.sh, cmp.sh and growth.sh: the tokenvault bench arguments of each named scenario
# (16 callers, 8 s after 1 s of warm-up; detokenize reveals from a pool of 20,000 tokens).
args() { case $1 in
  http-tok-b100) echo --protocol http --op tokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s;;
  http-detok-b100) echo --protocol http --op detokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s --pool 20000;;
  grpc-detok-b100) echo --protocol grpc --op detokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s --pool 20000;;
  http-tok-b1) echo --protocol http --op tokenize --batch 1 --concurrency 16 --duration 8s --warmup 1s;;
  grpc-tok-b1) echo --protocol grpc --op tokenize --batch 1 --concurrency 16 --duration 8s --warmup 1s;;
  *) echo "unknown scenario $1" >&2; return 1;;
esac; }

# ports_free ADDR...: fail when something already answers on one of the fixed loopback addresses
# (another server there would silently take this script's load and give wrong figures).
ports_free() {
  local a
  for a in "$@"; do
    if (exec 3<>"/dev/tcp/${a%:*}/${a##*:}") 2>/dev/null; then echo "$a is in use: stop what listens there first" >&2; return 1; fi
  done
}

# ready PID HTTPADDR LOG: wait for the server PID to answer /healthz on HTTPADDR; fail (showing
# LOG) when it exits or does not answer within 20 s.
ready() {
  local pid=$1 addr=$2 log=$3
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { echo "server exited:" >&2; cat "$log" >&2; return 1; }
    curl -sf "http://$addr/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not answer /healthz on $addr in 20 s:" >&2; cat "$log" >&2; return 1
}
