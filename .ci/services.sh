#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on local ports, for CI, benchmarks and local runs.
#   source .ci/services.sh && services_install && services_start   -> exports DATABASE_URL, REDIS_URL
#   services_stop
# Data lives under $CDP_SERVICES_DIR (default: a fresh temp dir) and is deleted on stop.

PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}

services_install() {
    local missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing ${missing[*]} from Debian packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

_pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }

_as_pg() {
    # initdb and postgres refuse to run as root: run them as the postgres user when we are root.
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

services_start() {
    CDP_SERVICES_DIR=${CDP_SERVICES_DIR:-$(mktemp -d /tmp/cdp-services.XXXXXX)}
    export CDP_SERVICES_DIR
    mkdir -p "$CDP_SERVICES_DIR/pg" "$CDP_SERVICES_DIR/redis"
    chmod 755 "$CDP_SERVICES_DIR"
    [ "$(id -u)" = 0 ] && chown -R postgres "$CDP_SERVICES_DIR/pg"
    local bin; bin=$(_pg_bin)
    _as_pg "$bin/initdb" -D "$CDP_SERVICES_DIR/pg/data" -U cdp --auth=trust -E UTF8 >/dev/null
    _as_pg "$bin/pg_ctl" -D "$CDP_SERVICES_DIR/pg/data" -l "$CDP_SERVICES_DIR/pg/log" -w \
        -o "-p $PG_PORT -k $CDP_SERVICES_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=on \
            -c shared_buffers=256MB -c max_connections=200" start >/dev/null
    _as_pg "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U cdp cdp
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$CDP_SERVICES_DIR/redis" --daemonize yes \
        --pidfile "$CDP_SERVICES_DIR/redis/redis.pid" --logfile "$CDP_SERVICES_DIR/redis/log"
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    export DATABASE_URL="postgres://cdp@127.0.0.1:$PG_PORT/cdp"
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    echo "PostgreSQL on $PG_PORT, Redis on $REDIS_PORT (data in $CDP_SERVICES_DIR)"
}

services_stop() {
    [ -n "${CDP_SERVICES_DIR:-}" ] || return 0
    local bin; bin=$(_pg_bin)
    _as_pg "$bin/pg_ctl" -D "$CDP_SERVICES_DIR/pg/data" -m fast stop >/dev/null 2>&1 || true
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$CDP_SERVICES_DIR"
}
