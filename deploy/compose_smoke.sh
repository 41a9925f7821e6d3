#!/usr/bin/env bash
# `make compose-smoke`: the whole compose stack on a private Docker engine, no image registry needed.
#
#   1. installs Debian's docker.io and debootstrap if missing (root only)
#   2. starts its own dockerd (data, exec root and socket under $STATE, default /var/tmp/cytoscore-docker)
#   3. provides python:3.11-slim as a stand-in: Debian bookworm (python 3.11) from debootstrap, with the
#      host's CA bundle (downloads inside builds are TLS-intercepted); the rootfs tarball is cached
#   4. builds the stand-in postgres and redis images (deploy/compose.ci.yml) and both app images
#   5. `up --wait`, scores a spreadsheet (XLSX) through the published HTTP API
#   6. `--scale worker=3`, checks that three workers answer a ping
#   7. `down -v` and stops its dockerd (also on failure or Ctrl-C)
#
# Options: --prepare-only  stop after step 4's base images (engine + stand-ins), for warming the cache
#          --cold          throw away the engine's images and build cache first (keeps the rootfs tarball)
# Env: COMPOSE_SMOKE_STATE, COMPOSE_SMOKE_PORT (18080), SMOKE_ROWS (60), DEBIAN_MIRROR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=deploy/tool_venv.sh
source "$ROOT/deploy/tool_venv.sh"

STATE=${COMPOSE_SMOKE_STATE:-/var/tmp/cytoscore-docker}
CACHE="$STATE/cache"
SOCK="$STATE/docker.sock"
ROOTFS_TAR="$CACHE/bookworm-python3.11-rootfs.tar"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PORT=${COMPOSE_SMOKE_PORT:-18080}
ROWS=${SMOKE_ROWS:-60}
PROJECT=cytoscore-smoke
BASE_IMAGE=python:3.11-slim
STANDIN_DEBIAN=cytoscore-standin/debian:bookworm
PREPARE_ONLY=0
COLD=0
for arg in "$@"; do
    case $arg in
        --prepare-only) PREPARE_ONLY=1 ;;
        --cold) COLD=1 ;;
        *) echo "usage: $0 [--prepare-only] [--cold]" >&2; exit 2 ;;
    esac
done

T_START=$SECONDS
T_PHASE=$SECONDS
TIMES=()
say() { printf 'compose-smoke [%4ds]: %s\n' "$((SECONDS - T_START))" "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }
phase_done() { TIMES+=("$(printf '%-34s %4d s' "$1" "$((SECONDS - T_PHASE))")"); T_PHASE=$SECONDS; }

[[ $(id -u) == 0 ]] || fail "needs root (apt-get, dockerd, debootstrap)"
export DOCKER_HOST="unix://$SOCK"
# A private client config: no credential helpers or contexts from the host's ~/.docker.
export DOCKER_CONFIG="$STATE/client-config"
DOCKERD_PID=""
STACK_UP=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cytoscore-compose-smoke.XXXXXX")

compose() {
    "$COMPOSE_BIN" -p "$PROJECT" -f docker-compose.yml -f deploy/compose.ci.yml --env-file "$WORK/smoke.env" "$@"
}

cleanup() {
    local rc=$?
    set +e
    if ((STACK_UP)); then
        if ((rc != 0)); then
            say "--- state of the stack"
            compose ps -a
            say "--- last log lines"
            compose logs --no-color --tail 60 | grep -v '"GET /api/v1/jobs/' | tail -n 80
        fi
        say "docker compose down -v"
        compose down -v --remove-orphans --timeout 20 >"$WORK/down.log" 2>&1 || cat "$WORK/down.log"
    fi
    if [[ -n "$DOCKERD_PID" ]]; then
        # Images left untagged by rebuilds; the build cache stays, it is what makes the next run fast.
        $DOCKER image prune -f >/dev/null 2>&1
    fi
    if [[ -n "$DOCKERD_PID" ]]; then
        say "stopping dockerd (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID"
        wait "$DOCKERD_PID" 2>/dev/null
        rm -f "$SOCK" "$STATE/dockerd.pid"
    fi
    rm -rf "$WORK"
    if ((${#TIMES[@]})); then printf '  %s\n' "${TIMES[@]}"; fi
    if ((rc == 0)); then say "passed in $((SECONDS - T_START)) s"; else say "FAILED (exit $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. packages ----------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 \
        || { apt-get update >>"$WORK/apt.log" 2>&1 \
             && apt-get install -y --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1; } \
        || { tail -20 "$WORK/apt.log"; fail "could not install ${missing[*]}"; }
fi
# Debian's docker.io CLI matches its dockerd; a newer CLI elsewhere on PATH negotiates down anyway.
DOCKER=/usr/bin/docker
[[ -x $DOCKER ]] || DOCKER=$(command -v docker)
ensure_tool_venv
mkdir -p "$CACHE" "$DOCKER_CONFIG"
phase_done "packages + tool venv"

# --- 2. engine ------------------------------------------------------------------------------------------
if [[ -f "$STATE/dockerd.pid" ]] && kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
    fail "a dockerd from an earlier run is still running (pid $(cat "$STATE/dockerd.pid")); stop it first"
fi
if ((COLD)); then
    say "--cold: removing the engine's data (images, build cache); keeping $ROOTFS_TAR"
    rm -rf "$STATE/data" "$STATE/exec"
fi
mkdir -p "$STATE/data" "$STATE/exec"
# nice: builds and containers are the engine's children and inherit it.
nice -n 10 dockerd --data-root "$STATE/data" --exec-root "$STATE/exec" -H "unix://$SOCK" \
    --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do
    $DOCKER info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$STATE/dockerd.log"; fail "dockerd exited"; }
    sleep 0.5
done
$DOCKER info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log"; fail "dockerd did not answer in 30 s"; }
say "dockerd $($DOCKER version --format '{{.Server.Version}}') up (pid $DOCKERD_PID, storage $($DOCKER info --format '{{.Driver}}'))"
phase_done "start dockerd"

# --- 3. the stand-in python:3.11-slim -----------------------------------------------------------------------
if ! $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [[ ! -s "$ROOTFS_TAR" ]]; then
        rootfs="$STATE/rootfs.tmp"
        rm -rf "$rootfs"
        say "debootstrap bookworm (python3, python3-venv, python3-pip, ca-certificates) from $MIRROR"
        nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
        # Like the official image: pip may install into the system, `python` and `pip` exist.
        rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
        ln -sf python3 "$rootfs/usr/bin/python"
        ln -sf pip3 "$rootfs/usr/bin/pip"
        # Package downloads here are TLS-intercepted: trust what the host trusts, also after any
        # update-ca-certificates run inside a build.
        cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
        cp /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/local/share/ca-certificates/host-bundle.crt"
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
        tar -C "$rootfs" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
        mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
        rm -rf "$rootfs"
        phase_done "debootstrap rootfs (cached now)"
    fi
    say "docker import $ROOTFS_TAR as $BASE_IMAGE and $STANDIN_DEBIAN"
    $DOCKER import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
    $DOCKER tag "$BASE_IMAGE" "$STANDIN_DEBIAN"
    phase_done "import the stand-in base image"
fi
say "$BASE_IMAGE: $($DOCKER run --rm "$BASE_IMAGE" python --version)"

# --- 4. images ------------------------------------------------------------------------------------------
# An env file like a real .env: .env.example with fresh secrets (hex: URL-safe) and the smoke's own port.
secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
sed -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(secret)/" \
    -e "s/^REDIS_PASSWORD=.*/REDIS_PASSWORD=$(secret)/" \
    -e "s/^SECRET_KEY=.*/SECRET_KEY=$(secret)/" \
    -e "s/^FLOWER_BASIC_AUTH=.*/FLOWER_BASIC_AUTH=smoke:$(secret)/" \
    -e "s/^API_BIND_ADDRESS=.*/API_BIND_ADDRESS=127.0.0.1/" \
    -e "s/^API_PUBLISH_PORT=.*/API_PUBLISH_PORT=$PORT/" \
    -e "s/^IMAGE_PREFIX=.*/IMAGE_PREFIX=cytoscore-smoke/" \
    -e "s/^CYTOSCORE_WORKER_CONCURRENCY=.*/CYTOSCORE_WORKER_CONCURRENCY=1/" \
    .env.example >"$WORK/smoke.env"
grep -Eq "^[A-Z_]+=.*change-me" "$WORK/smoke.env" && fail ".env.example has a change-me value the smoke does not replace"

say "building the stand-in postgres and redis images"
compose build postgres redis >"$WORK/build-standins.log" 2>&1 \
    || { tail -40 "$WORK/build-standins.log"; fail "building the stand-ins failed"; }
phase_done "build stand-in postgres + redis"
if ((PREPARE_ONLY)); then
    say "--prepare-only: engine and base images are ready"
    exit 0
fi

say "building the app images (Dockerfile.api, Dockerfile.worker)"
compose build migrate api worker >"$WORK/build-app.log" 2>&1 \
    || { tail -60 "$WORK/build-app.log"; fail "building the app images failed"; }
$DOCKER image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E 'cytoscore-smoke|standin' || true
phase_done "build app images"

# Properties of the final images that only a built image shows.
for image in cytoscore-smoke-api:latest cytoscore-smoke-worker:latest; do
    user=$($DOCKER image inspect --format '{{.Config.User}}' "$image")
    [[ -n "$user" && "$user" != root && "$user" != 0* ]] || fail "$image runs as '${user:-root}'"
    # The base image's own pip stays (it is python:3.11-slim's); the app's venv has none, nor a compiler.
    # shellcheck disable=SC2016 # the script is for the container's shell
    $DOCKER run --rm --user 0 --entrypoint sh "$image" -c \
        'for t in gcc cc make /opt/venv/bin/pip; do command -v "$t" && exit 1; done;
         for d in /root/.cache/pip /home/cytoscore/.cache/pip /tmp/pip-*; do test -e "$d" && exit 1; done; exit 0' \
        >/dev/null || fail "$image carries build tools, pip in its venv, or a pip cache"
    $DOCKER run --rm "$image" cytoscore --help >/dev/null || fail "$image: cytoscore --help fails"
    # The code must be imported from /app (PYTHONPATH), not from the copy pip put in site-packages:
    # shared/settings.py derives ROOT (alembic.ini, models/, gunicorn --chdir) from its own path.
    root=$($DOCKER run --rm "$image" python -c 'import shared.settings as s; print(s.ROOT)')
    [[ "$root" == /app ]] || fail "$image: shared.settings.ROOT is $root, not /app"
    say "$image: user $user; no compiler, no pip in /opt/venv, no pip cache; cytoscore --help works; ROOT=/app"
done

# --- 5. up, score -----------------------------------------------------------------------------------------
say "docker compose up -d --wait"
STACK_UP=1
compose up -d --wait --wait-timeout 300 >"$WORK/up.log" 2>&1 \
    || { cat "$WORK/up.log"; fail "the stack did not become healthy"; }
compose ps --format 'table {{.Service}}\t{{.Status}}\t{{.Ports}}'
[[ $(compose ps -a --format '{{.Service}} {{.State}} {{.ExitCode}}' | grep '^migrate') == "migrate exited 0" ]] \
    || fail "migrate did not exit 0"
phase_done "up --wait (healthy)"

curl -fsS "http://127.0.0.1:$PORT/healthz" && echo
# An account and an API token inside the stack, the way an operator makes them.
compose exec -T api sh -c 'printf "%s\n" "compose-smoke-password-$$" | cytoscore users add smoke@example.org --role lab' \
    || fail "could not add an account"
SMOKE_TOKEN=$(compose exec -T api cytoscore tokens add smoke@example.org 2>/dev/null | tr -d '\r')
export SMOKE_TOKEN
[[ $SMOKE_TOKEN == cs_* ]] || fail "no API token"
"$ROOT/.venv/bin/python" deploy/smoke_client.py "http://127.0.0.1:$PORT" --rows "$ROWS" --format xlsx --timeout 120 \
    || fail "scoring through the published API failed"
phase_done "score an XLSX through the API"

# --- 6. three workers ---------------------------------------------------------------------------------------
say "docker compose up -d --wait --scale worker=3"
compose up -d --wait --wait-timeout 300 --scale worker=3 >"$WORK/scale.log" 2>&1 \
    || { cat "$WORK/scale.log"; fail "scaling to three workers failed"; }
healthy=$(compose ps worker --format '{{.Name}} {{.Health}}' | grep -c ' healthy$' || true)
((healthy == 3)) || { compose ps worker; fail "$healthy of 3 worker containers are healthy"; }
ping_out=$(compose exec -T --index 1 worker celery -A worker.celery_app inspect ping --timeout 10 2>&1) \
    || { echo "$ping_out"; fail "celery inspect ping failed"; }
printf '    %s\n' "${ping_out//$'\n'/$'\n'    }"
# Each worker container's two nodes (cases-<pid>@<its hostname>, files-<pid>@<its hostname>) must have answered.
answered=0
for container in $(compose ps -q worker); do
    host="$($DOCKER inspect --format '{{.Config.Hostname}}' "$container")"
    nodes=$(grep -cE -- "->[[:space:]]+(cases|files)-[0-9]+@$host: OK" <<<"$ping_out" || true)
    if ((nodes == 2)); then
        answered=$((answered + 1))
    else
        say "$nodes of 2 nodes of $host answered"
    fi
done
((answered == 3)) || fail "$answered of the 3 worker containers had both nodes answer the ping"
say "three worker containers healthy, and both of each one's celery nodes answered the ping"
"$ROOT/.venv/bin/python" deploy/smoke_client.py "http://127.0.0.1:$PORT" --rows "$ROWS" --format csv --timeout 120 \
    || fail "scoring with three workers failed"
phase_done "scale worker=3, ping, score again"
