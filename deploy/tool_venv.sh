# Sourced by deploy/*.sh: make sure the deployment tool venv ($DEPLOY_VENV, default .venv-deploy) matches
# requirements/deploy.lock, and export COMPOSE_BIN (the real Docker Compose binary) and HADOLINT_BIN.
# shellcheck shell=bash

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
DEPLOY_VENV=${DEPLOY_VENV:-$ROOT/.venv-deploy}
DEPLOY_PYTHON=${DEPLOY_PYTHON:-python3.11}

ensure_tool_venv() {
    local lock="$ROOT/requirements/deploy.lock" stamp want
    stamp="$DEPLOY_VENV/.deploy-lock.sha256"
    want=$(sha256sum "$lock" | cut -d' ' -f1)
    if [[ ! -x "$DEPLOY_VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        echo "tool venv: installing $lock into $DEPLOY_VENV"
        rm -rf "$DEPLOY_VENV"
        "$DEPLOY_PYTHON" -m venv "$DEPLOY_VENV"
        "$DEPLOY_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$lock"
        "$DEPLOY_VENV/bin/pip" check
        echo "$want" >"$stamp"
    fi
    # The `docker-compose` console script is a Python wrapper that exits 0 whatever the binary says:
    # call the Go binary shipped inside the `compose` package instead.
    COMPOSE_BIN=$("$DEPLOY_VENV/bin/python" -c \
        'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
    HADOLINT_BIN="$DEPLOY_VENV/bin/hadolint"
    [[ -x "$COMPOSE_BIN" ]] || { echo "tool venv: no compose binary at $COMPOSE_BIN" >&2; return 1; }
    [[ -x "$HADOLINT_BIN" ]] || { echo "tool venv: no hadolint at $HADOLINT_BIN" >&2; return 1; }
    export COMPOSE_BIN HADOLINT_BIN
}
