# `make run` — the whole system on this machine (SQLite + a file broker under ./var/, no servers to install).
# `make test` — the whole suite, against real PostgreSQL and Redis (see tests/conftest.py for the URLs).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install browser run test lint lock train bench deploy-check compose-smoke clean

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The browser tests drive Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

run: install
	$(BIN)/cytoscore run

test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Re-pin every dependency (needs uv: `pip install uv`). Review the diff before committing.
lock:
	uv pip compile --python-version 3.11 --generate-hashes requirements/runtime.in -o requirements/runtime.lock
	uv pip compile --python-version 3.11 --generate-hashes requirements/dev.in -o requirements/dev.lock

train: install
	$(BIN)/cytoscore train

# Figures for the README; needs PostgreSQL and Redis like the tests. Not timed tests: tables to read.
bench: install
	$(BIN)/python bench/upload_throughput.py --rows 100000
	$(BIN)/python bench/single_case.py --json bench/results/single_case.json
	$(BIN)/python bench/load.py

# Every CI run: compose config with the real binary, hadolint, the deploy checker, a host-process smoke.
deploy-check: install
	bash deploy/check.sh

# The real thing: dockerd, stand-in base images, both images built, the stack up, a spreadsheet scored, 3 workers.
compose-smoke: install
	bash deploy/compose_smoke.sh

clean:
	rm -rf var .pytest_cache
