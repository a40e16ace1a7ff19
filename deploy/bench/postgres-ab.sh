#!/usr/bin/env bash
# postgres-ab.sh OUT [PAIRS] [DURATION]: two tokenvault binaries, A/B, on one PostgreSQL cluster.
#   BEFORE=path/to/tokenvault AFTER=path/to/tokenvault (required)
# One cluster (the settings of deploy/bench/postgres.sh), databases
# tva and tvb; one replica of $BEFORE on tva and one of $AFTER on tvb; PAIRS
# rounds, each: tokenize before, tokenize after, detokenize before, detokenize after (order
# flipped every other round), batch 100, 16 workers, DURATION each. Per run:
# OUT/OP-VERSION.ROUND.json (tokenvault bench -o json, with the replica's CPU per item) and
# .stmts (pg_stat_statements calls of its database and their total execution time in ms,
# including the pool fill of detokenize; then the 1-minute load average at the start; then
# PostgreSQL's CPU seconds over the run, pool fill included: utime+stime of the postmaster
# and its children, reaped ones included, from /proc).
# KEEP_LOGS=1 keeps the servers' and PostgreSQL's logs in OUT/logs.
set -euo pipefail
OUT=${1:?usage: postgres-ab.sh OUT [PAIRS] [DURATION]}; PAIRS=${2:-6}; DUR=${3:-10s}
declare -A BIN=([before]=$(readlink -f "${BEFORE:?set BEFORE}") [after]=$(readlink -f "${AFTER:?set AFTER}"))
mkdir -p "$OUT"; OUT=$(readlink -f "$OUT")
. "$(dirname "$0")/pgcluster.sh"
psql -d postgres -c 'CREATE DATABASE tva' -c 'CREATE DATABASE tvb'
psql -d postgres -c 'CREATE EXTENSION pg_stat_statements'
declare -A TOKEN ADDR PID
n=0
for v in before after; do
	n=$((n+1)); db=tva; [ $v = after ] && db=tvb
	URL="postgres://postgres@/$db?host=$W&port=$PORT&sslmode=disable"
	TOKEN[$v]=$("${BIN[$v]}" init --store "$URL" --kek-file "$W/kek-$v.json" -o json | sed -n 's/.*"root_token": *"\([^"]*\)".*/\1/p')
	serve_tv "$v" "${BIN[$v]}" --store "$URL" --kek-file "$W/kek-$v.json" --replica-id "r$n" --erasure-log "$W/$v.erasure.log" \
		--log-level warn
	ADDR[$v]=$TV_GRPC PID[$v]=${pids[-1]}
done
stmts() { psql -d postgres -At -F ' ' -c "SELECT coalesce(sum(calls), 0), round(coalesce(sum(total_exec_time), 0)::numeric, 1) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$1'"; }
pgcpu() { # CPU seconds of the postmaster and its children (reaped ones included)
	local pm; pm=$(head -1 "$W/pg/postmaster.pid")
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | # processes may end meanwhile
		awk -v pm="$pm" -v hz="$(getconf CLK_TCK)" '{ pid = $1; sub(/^.*\) /, ""); if (pid == pm || $2 == pm) t += $12 + $13 + $14 + $15 }
			END { printf "%.2f", t / hz }'
}
run() { # run OP VERSION ROUND
	local op=$1 v=$2 r=$3 db=tva; [ $v = after ] && db=tvb
	psql -d postgres -c 'SELECT pg_stat_statements_reset()' >/dev/null
	local load cpu0; load=$(cut -d' ' -f1 /proc/loadavg); cpu0=$(pgcpu)
	"${BIN[$v]}" bench --addr "${ADDR[$v]}" --token "${TOKEN[$v]}" --op "$op" --batch 100 --concurrency 16 \
		--duration "$DUR" --pool 20000 --server-pid "${PID[$v]}" -o json >"$OUT/$op-$v.$r.json" 2>"$OUT/$op-$v.$r.err" || true
	echo "$(stmts $db) $load $(awk -v a="$cpu0" -v b="$(pgcpu)" 'BEGIN { printf "%.2f", b - a }')" >"$OUT/$op-$v.$r.stmts"
}
for r in $(seq "$PAIRS"); do
	order="before after"; [ $((r % 2)) = 0 ] && order="after before"
	for op in tokenize detokenize; do for v in $order; do run $op $v $r; done; done
	echo "round $r done $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
