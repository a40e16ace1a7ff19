# Sourced by postgres.sh and postgres-ab.sh (not run): a PostgreSQL 15 cluster in a temporary
# directory for benchmarks. Expects OUT (an absolute directory); sets PGBIN, W (the
# directory), PORT, RUNAS, pids (processes to kill at exit: append to it) and psql(); starts
# the cluster (unix socket only, fsync on, synchronous_commit on, pg_stat_statements loaded)
# and, at exit, copies W's *.log files into OUT/logs (when KEEP_LOGS is set), kills pids,
# stops the cluster and removes W.
PGBIN=$(dirname "$(readlink -f "$(command -v initdb || echo /usr/lib/postgresql/15/bin/initdb)")")
W=$(mktemp -d /tmp/tvbench-XXXXXX)
RUNAS=()
if [ "$(id -u)" = 0 ]; then chown postgres "$W"; RUNAS=(runuser -u postgres --); fi
PORT=$((20000 + RANDOM % 20000))
pids=()
cleanup() {
	if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$OUT/logs"; cp "$W"/*.log "$OUT/logs/" 2>/dev/null || true; fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$W/pg" stop -m fast >/dev/null 2>&1 || true
	rm -rf "$W"
}
trap cleanup EXIT

"${RUNAS[@]}" "$PGBIN/initdb" -D "$W/pg" -U postgres -A trust -E UTF8 --no-locale >/dev/null
cat >>"$W/pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$W'
port = $PORT
fsync = on
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
max_pred_locks_per_transaction = 4096
CONF
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg.log" -w start >/dev/null
psql() { "$PGBIN/psql" -h "$W" -p "$PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
