# Sourced by postgres.sh and postgres-ab.sh (not run): a PostgreSQL 15 cluster in a temporary
# directory for benchmarks. Expects OUT (an absolute directory); sets PGBIN, W (the
# directory), PORT, RUNAS, pids (processes to kill at exit: append to it), psql() and
# serve_tv() (below); starts the cluster (unix socket only, fsync on, synchronous_commit on, pg_stat_statements loaded)
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

# serve_tv NAME BIN ARGS...: starts "BIN serve ARGS..." on ports the kernel picks (127.0.0.1:0),
# its output in $W/NAME.log and its pid in pids, waits until it has bound every listener (its
# "listening:" line) and answers /healthz, and sets TV_GRPC and TV_HTTP to its addresses. If it
# stops or is not up within 60 s, prints its log and exits. Fixed ports let a run talk to
# whatever else listened there (another helper's server, refusing this run's root token with
# Unauthenticated: issue 12) while the replica meant to be measured had failed to start.
serve_tv() {
	local name=$1 bin=$2 log="$W/$1.log" pid line
	shift 2
	"$bin" serve "$@" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --vendor-addr 127.0.0.1:0 >"$log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 300); do
		line=$(sed -n 's/^listening: //p' "$log")
		[ -n "$line" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if [ -z "$line" ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "serve_tv: tokenvault server $name did not start; its log:" >&2
		cat "$log" >&2
		exit 1
	fi
	TV_GRPC=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' <<<"$line")
	TV_HTTP=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' <<<"$line")
	for _ in $(seq 100); do
		curl -sf "http://$TV_HTTP/healthz" >/dev/null && return 0
		sleep 0.2
	done
	echo "serve_tv: tokenvault server $name (http $TV_HTTP) does not answer /healthz" >&2
	exit 1
}
