#!/usr/bin/env bash
# Run the exact `command:` of the migrate, api and worker services of docker-compose.yml as ordinary host
# processes (the app's .venv/bin first on PATH) against the local PostgreSQL (a throwaway database) and
# Redis db 14 (not 15: the test suite uses 15, and its workers would take our messages), then score a small
# CSV through POST /api/v1/jobs and wait for the job to succeed. Everything it started is stopped on exit.
#
# Env: SMOKE_PG_HOST (127.0.0.1), SMOKE_PG_PORT (5432), SMOKE_PG_USER (postgres), SMOKE_REDIS_URL
# (redis://127.0.0.1:6379/14 -- flushed before and after), SMOKE_ROWS (40), SMOKE_TIMEOUT (120 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=deploy/tool_venv.sh
source "$ROOT/deploy/tool_venv.sh"

PG_HOST=${SMOKE_PG_HOST:-127.0.0.1}
PG_PORT=${SMOKE_PG_PORT:-5432}
PG_USER=${SMOKE_PG_USER:-postgres}
REDIS_URL=${SMOKE_REDIS_URL:-redis://127.0.0.1:6379/14}
ROWS=${SMOKE_ROWS:-40}
TIMEOUT=${SMOKE_TIMEOUT:-120}
DB=cytoscore_smoke_$$
APP_PY="$ROOT/.venv/bin/python"

say() { printf 'host-smoke: %s\n' "$*"; }
fail() { printf 'host-smoke: FAIL: %s\n' "$*" >&2; exit 1; }

[[ -x "$APP_PY" ]] || fail "no app venv at .venv (make the app's venv first)"
[[ -f api/wsgi.py && -f worker/celery_app.py ]] || fail "api/wsgi.py or worker/celery_app.py does not exist yet"
ensure_tool_venv

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cytoscore-host-smoke.XXXXXX")
PIDS=()
NAMES=()
DB_CREATED=0

redis_flush() {
    "$APP_PY" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1]).flushdb()' "$REDIS_URL"
}

cleanup() {
    local rc=$? pid
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if ((rc != 0)); then
        for log in "$WORK"/*.log; do
            [[ -f "$log" ]] || continue
            echo "----- last lines of $(basename "$log")"; tail -n 40 "$log"
        done
    fi
    if ((DB_CREATED)); then
        psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
            -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" && say "dropped database $DB"
    fi
    redis_flush 2>/dev/null
    rm -rf "$WORK"
    if ((rc == 0)); then say "passed"; else say "FAILED (exit $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command_of() { "$DEPLOY_VENV/bin/python" deploy/compose_commands.py docker-compose.yml "$1"; }
MIGRATE_CMD=$(command_of migrate)
API_CMD=$(command_of api)
WORKER_CMD=$(command_of worker)
say "commands from docker-compose.yml: migrate: $MIGRATE_CMD | api: $API_CMD | worker: $WORKER_CMD"

PORT=$("$APP_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PATH="$ROOT/.venv/bin:$PATH"
export DATABASE_URL="postgresql+psycopg://$PG_USER@$PG_HOST:$PG_PORT/$DB"
export BROKER_URL="$REDIS_URL"
export PORT
SECRET_KEY="host-smoke-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export SECRET_KEY
export CYTOSCORE_VAR_DIR="$WORK/var"
export CYTOSCORE_WEB_WORKERS=${CYTOSCORE_WEB_WORKERS:-1}
export CYTOSCORE_WORKER_CONCURRENCY=${CYTOSCORE_WORKER_CONCURRENCY:-1}
mkdir -p "$CYTOSCORE_VAR_DIR"

cytoscore --help >/dev/null || fail "cytoscore --help does not work"
createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$DB"
DB_CREATED=1
redis_flush
say "database $DB on $PG_HOST:$PG_PORT, broker $REDIS_URL (flushed), web port $PORT"

t0=$SECONDS
say "migrate: $MIGRATE_CMD"
eval "$MIGRATE_CMD" >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; fail "migrate exited non-zero"; }
tables=$(psql -X -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$DB" \
    -c "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
say "migrate: ok in $((SECONDS - t0)) s; tables: $tables"

start() {  # start NAME COMMAND: a background process in its own process group, logging to $WORK/NAME.log
    setsid bash -c "exec $2" >"$WORK/$1.log" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$1")
    say "$1: started (pid $!): $2"
}
start api "$API_CMD"
start worker "$WORKER_CMD"

t0=$SECONDS
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
    for i in "${!PIDS[@]}"; do
        kill -0 "${PIDS[$i]}" 2>/dev/null || fail "${NAMES[$i]} exited early (see its log below)"
    done
    ((SECONDS - t0 < 60)) || fail "GET /healthz did not answer 200 within 60 s"
    sleep 1
done
say "GET /healthz: 200 after $((SECONDS - t0)) s"

# An account and an API token, made the way an operator makes them.
SMOKE_USER="smoke-$$@example.org"
printf '%s\n' "host-smoke-password-$$-$RANDOM" | cytoscore users add "$SMOKE_USER" --role lab >/dev/null
SMOKE_TOKEN=$(cytoscore tokens add "$SMOKE_USER" 2>/dev/null)
export SMOKE_TOKEN
say "account $SMOKE_USER with an API token"

t0=$SECONDS
"$APP_PY" deploy/smoke_client.py "http://127.0.0.1:$PORT" --rows "$ROWS" --format csv --timeout "$TIMEOUT"
say "scored $ROWS rows in $((SECONDS - t0)) s"
