# A throw-away PostgreSQL cluster for scripts (conformance runs, benchmarks): initdb + pg_ctl on
# a free port in a directory of the caller's, as the postgres user (or nobody) when run as root.
# Source it, then:  throwaway_pg_start DIR   (sets THROWAWAY_PG_URL)   …   throwaway_pg_stop
# A DIR that already holds a cluster (from an earlier start) is started again as it is.
# Binaries come from $KILN_PG_BIN or the newest /usr/lib/postgresql/*/bin.

THROWAWAY_PG_URL=""
_throwaway_pg_ctl=""
_throwaway_pg_data=""
_throwaway_pg_runner=()

throwaway_pg_start() {
    local dir="$1" bin="${KILN_PG_BIN:-}"
    if [ -z "$bin" ]; then
        bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
        echo "throwaway-postgres: initdb/pg_ctl not found; apt-get install postgresql or set KILN_PG_BIN" >&2
        return 2
    fi
    mkdir -p "$dir"
    _throwaway_pg_data="$dir/data"
    if [ "$(id -u)" = "0" ]; then
        # PostgreSQL refuses to run as root.
        local user=nobody
        id postgres >/dev/null 2>&1 && user=postgres
        chmod 755 "$(dirname "$dir")" "$dir"
        chown -R "$user" "$dir"
        _throwaway_pg_runner=(runuser -u "$user" --)
    fi
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    local existing=""
    [ -f "$_throwaway_pg_data/PG_VERSION" ] && existing=yes
    if [ -z "$existing" ] && ! "${_throwaway_pg_runner[@]}" "$bin/initdb" -D "$_throwaway_pg_data" -U kiln --auth=trust -E UTF8 --no-sync \
            --no-instructions >"$dir/initdb.log" 2>&1; then
        echo "throwaway-postgres: initdb failed:" >&2; cat "$dir/initdb.log" >&2; return 2
    fi
    _throwaway_pg_ctl="$bin/pg_ctl"
    if ! "${_throwaway_pg_runner[@]}" "$_throwaway_pg_ctl" -D "$_throwaway_pg_data" -w -t 60 -l "$dir/log" \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${THROWAWAY_PG_OPTIONS:-}" start >/dev/null; then
        echo "throwaway-postgres: PostgreSQL did not start:" >&2; cat "$dir/log" >&2; _throwaway_pg_ctl=""; return 2
    fi
    if [ -z "$existing" ] && ! "${_throwaway_pg_runner[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U kiln kiln; then
        echo "throwaway-postgres: createdb failed" >&2; return 2
    fi
    THROWAWAY_PG_URL="postgres://kiln@127.0.0.1:$port/kiln"
}

throwaway_pg_stop() {
    if [ -n "$_throwaway_pg_ctl" ]; then
        "${_throwaway_pg_runner[@]}" "$_throwaway_pg_ctl" -D "$_throwaway_pg_data" stop -m fast >/dev/null 2>&1
        _throwaway_pg_ctl=""
    fi
}
