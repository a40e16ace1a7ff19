# Sourced by quiet.sh and cmp.sh: the tokenvault bench arguments of each named scenario
# (16 callers, 8 s after 1 s of warm-up; detokenize reveals from a pool of 20,000 tokens).
args() { case $1 in
  http-tok-b100) echo --protocol http --op tokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s;;
  http-detok-b100) echo --protocol http --op detokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s --pool 20000;;
  grpc-detok-b100) echo --protocol grpc --op detokenize --batch 100 --concurrency 16 --duration 8s --warmup 1s --pool 20000;;
  http-tok-b1) echo --protocol http --op tokenize --batch 1 --concurrency 16 --duration 8s --warmup 1s;;
  grpc-tok-b1) echo --protocol grpc --op tokenize --batch 1 --concurrency 16 --duration 8s --warmup 1s;;
  *) echo "unknown scenario $1" >&2; return 1;;
esac; }
