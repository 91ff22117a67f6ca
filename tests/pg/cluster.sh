# tests/pg/cluster.sh: a temporary PostgreSQL 15 cluster on loopback for the emu2 extension tests.
# Source it (after tests/cli/lib.sh), then: pg_start [preload] ; pg_sql "SQL" ; pg_stop (trap'd).
# The cluster runs as the postgres OS user when the tests run as root (initdb refuses root).
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_TMP= PG_PORT= PG_DATA=
EMU2_ROOT=${EMU2_ROOT:-$(pwd)}
PG_MODEL=${PG_MODEL:-$EMU2_ROOT/models/emu2-tiny-digits}

pg_as() { # runs a command as the cluster's owner
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_free_port() { # from a per-process offset, so parallel test runs rarely pick the same port
    local p
    for p in $(seq $((54321 + $$ % 100)) 54521); do
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$p" ] &&
            [ ! -e "$PG_TMP/.s.PGSQL.$p" ]; then
            echo "$p"; return 0
        fi
    done
    return 1
}

# pg_start [preload]: initdb + start; "preload" puts emu2 in shared_preload_libraries.
# Extra settings for postgresql.conf may be passed in PG_EXTRA_CONF.
pg_start() {
    PG_TMP=$(mktemp -d /tmp/emu2-pg.XXXXXX)
    chmod 755 "$PG_TMP"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_TMP"
    PG_DATA=$PG_TMP/data
    pg_as "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C -A trust >"$PG_TMP/initdb.log" 2>&1 ||
        { cat "$PG_TMP/initdb.log" >&2; return 1; }
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$PG_TMP'"
        echo "max_worker_processes = 32"
        echo "max_connections = 40"
        echo "emu2.model_path = '$PG_MODEL'"
        echo "emu2.threads = ${PG_THREADS:-1}"
        echo "emu2.device = 'cpu'"
        [ "${1:-}" = preload ] && echo "shared_preload_libraries = 'emu2'"
        printf '%s\n' "${PG_EXTRA_CONF:-}"
    } | pg_as tee -a "$PG_DATA/postgresql.conf" >/dev/null
    local try
    for try in 1 2 3; do # another run may take the port between the check and the start
        PG_PORT=$(pg_free_port) || { echo "no free port" >&2; return 1; }
        echo "port = $PG_PORT" | pg_as tee -a "$PG_DATA/postgresql.conf" >/dev/null
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_TMP/server.log" -w -t 60 start >/dev/null && break
        [ $try -eq 3 ] && { tail -n 20 "$PG_TMP/server.log" >&2; return 1; }
    done
    pg_sql "CREATE EXTENSION emu2" >/dev/null
}

pg_stop() {
    if [ -n "$PG_DATA" ] && [ -d "$PG_DATA" ]; then
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
    fi
    [ -n "$PG_TMP" ] && rm -rf "$PG_TMP"
    PG_DATA= PG_TMP=
}

# pg_sql SQL: runs it (unaligned, tuples only) and prints the result; non-zero on an error.
pg_sql() {
    pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$PG_TMP" -p "$PG_PORT" -U postgres -d postgres -c "$1"
}
pg_psql() { # the psql command line, for scripts and pipes
    pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$PG_TMP" -p "$PG_PORT" -U postgres -d postgres "$@"
}
pg_server_restarted() { grep -q "terminating any other active server processes\|all server processes terminated" "$PG_TMP/server.log"; }
now_ms() { # wall-clock milliseconds, for timing queries
    echo $(($(date +%s%N) / 1000000))
}
