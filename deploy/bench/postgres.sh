#!/usr/bin/env bash
# tokenvault on PostgreSQL vs pgbench, side by side on one cluster (BENCHMARKS.md, "PostgreSQL").
#
# usage: deploy/bench/postgres.sh OUTDIR [ROUNDS] [DURATION]
#   TOKENVAULT=path/to/tokenvault (default: ./tokenvault, built with go build ./cmd/tokenvault)
#
# One PostgreSQL 15 cluster in a temporary directory (unix socket only, fsync on,
# synchronous_commit on, the same settings for everything below), two databases: tv (tokenvault)
# and pgb (pgbench, a table of the same shape as tokenvault_kv). In each of ROUNDS rounds, in
# this order: pgbench with 16 and with 32 clients, each transaction one multi-row INSERT of 100
# rows (16-byte random keys, 120-byte random values); tokenvault bench tokenize, batch 100, 16
# workers, against 1 replica, then against 2 replicas at once (16 workers each); detokenize,
# batch 100, against 1 replica, then 2. Each run lasts DURATION (default 15s). Results: one JSON
# (or pgbench text) file per run in OUTDIR, and OUTDIR/summary.txt with the medians.
# Server statements per tokenize and detokenize call come from pg_stat_statements (reset before
# each run; the detokenize figure includes filling the pool of tokens to reveal).
set -euo pipefail
OUT=${1:?usage: postgres.sh OUTDIR [ROUNDS] [DURATION]}
ROUNDS=${2:-5}
DUR=${3:-15s}
BIN=$(readlink -f "${TOKENVAULT:-./tokenvault}")
mkdir -p "$OUT"
OUT=$(readlink -f "$OUT")
. "$(dirname "$0")/pgcluster.sh"
psql -d postgres -c 'CREATE DATABASE tv' -c 'CREATE DATABASE pgb'
psql -d tv -c 'CREATE EXTENSION pg_stat_statements'
psql -d pgb -c 'CREATE TABLE kv (bucket text NOT NULL, key bytea NOT NULL, value bytea NOT NULL, PRIMARY KEY (bucket, key))'
cat >"$W/insert100.sql" <<'SQL'
INSERT INTO kv (bucket, key, value)
SELECT 'records', uuid_send(gen_random_uuid()), substr(decode(repeat(md5(random()::text), 8), 'hex'), 1, 120)
FROM generate_series(1, 100);
SQL
URL="postgres://postgres@/tv?host=$W&port=$PORT&sslmode=disable"
TOKEN=$("$BIN" init --store "$URL" --kek-file "$W/kek.json" -o json | sed -n 's/.*"root_token": *"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || { echo "init printed no root token" >&2; exit 1; }

# replica N listens on ports the kernel picks (serve_tv), its gRPC address in ADDR[N]
declare -A ADDR
for n in 1 2; do
	serve_tv "r$n" "$BIN" --store "$URL" --kek-file "$W/kek.json" --replica-id "r$n" --erasure-log "$W/r$n.erasure.log" \
		--log-level warn
	ADDR[$n]=$TV_GRPC
done

stmts_reset() { psql -d tv -c 'SELECT pg_stat_statements_reset()' >/dev/null; }
stmts() { psql -d tv -At -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'tv'"; }
bench() { # bench FILE OP REPLICAS
	local file=$1 op=$2 reps=$3 bp=()
	for n in $(seq "$reps"); do
		"$BIN" bench --addr "${ADDR[$n]}" --token "$TOKEN" --op "$op" --batch 100 --concurrency 16 \
			--duration "$DUR" --pool 20000 -o json >"$file.r$n" &
		bp+=($!)
	done
	wait "${bp[@]}"
}

for r in $(seq "$ROUNDS"); do
	for c in 16 32; do
		"$PGBIN/pgbench" -h "$W" -p "$PORT" -U postgres -n -c "$c" -j 2 -T "${DUR%s}" -f "$W/insert100.sql" pgb \
			>"$OUT/pgbench-c$c.$r.txt" 2>&1
	done
	for reps in 1 2; do
		stmts_reset
		bench "$OUT/tokenize-$reps.$r" tokenize "$reps"
		echo "$(stmts)" >"$OUT/tokenize-$reps.$r.statements"
	done
	for reps in 1 2; do
		stmts_reset
		bench "$OUT/detokenize-$reps.$r" detokenize "$reps"
		echo "$(stmts)" >"$OUT/detokenize-$reps.$r.statements"
	done
	echo "round $r done" >&2
done

# Medians: pgbench rows/s (tps × 100), tokenvault items/s (summed over replicas), statements
# per call (pg_stat_statements calls / calls made, warm-up included).
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
items() { jq -s 'map(.items_per_s) | add' "$@"; }
{
	echo "date: $(date -u +%FT%TZ)  rounds: $ROUNDS  duration: $DUR  machine: $(nproc) cores, $(uname -sr)"
	for c in 16 32; do
		echo "pgbench $c clients, rows/s: $(for f in "$OUT"/pgbench-c$c.*.txt; do sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$f" | awk '{print $1*100}'; done | median)"
	done
	for op in tokenize detokenize; do
		for reps in 1 2; do
			echo "$op $reps replica(s), items/s: $(for r in $(seq "$ROUNDS"); do items "$OUT/$op-$reps.$r".r*; done | median)"
		done
	done
	for op in tokenize detokenize; do
		for reps in 1 2; do
			echo "server statements per $op call, $reps replica(s): $(for r in $(seq "$ROUNDS"); do
				calls=$(jq -s 'map(.total_items / .batch) | add' "$OUT/$op-$reps.$r".r*)
				awk -v s="$(cat "$OUT/$op-$reps.$r.statements")" -v c="$calls" 'BEGIN {printf "%.2f\n", s/c}'
			done | median)"
		done
	done
} | tee "$OUT/summary.txt"
