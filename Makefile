# `make run` — the whole system on this machine: PostgreSQL from a wheel and a file broker under ./var/, nothing to install.
# `make test` — the whole suite, against real PostgreSQL and Redis and a real worker (see tests/conftest.py for the URLs).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install system browser run test lint lock train bench bench-peers profile deploy-check compose-smoke clean

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The lock holds every dependency: --no-deps keeps pip's resolver out (pip 23 refuses a hashed lock once an
	# extra, such as weasyprint's fonttools[woff], has a newer release than the pin); pip check proves it whole.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements/dev.lock
	$(BIN)/pip check
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The PDF report lays its text out with Pango (WeasyPrint), in DejaVu: Debian's packages, when they are missing.
system:
	@ldconfig -p | grep -q libpangoft2-1.0 && fc-list | grep -qi dejavu || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; }

# The browser tests drive Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

run: install system
	$(BIN)/cytoscore run

test: install system browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Re-pin every dependency (needs uv: `pip install uv`). Review the diff before committing.
lock:
	uv pip compile --python-version 3.11 --generate-hashes requirements/runtime.in -o requirements/runtime.lock
	uv pip compile --python-version 3.11 --generate-hashes requirements/dev.in -o requirements/dev.lock

train: install
	$(BIN)/cytoscore train

# Figures for docs/performance.md; needs PostgreSQL and Redis like the tests. Not timed tests: one table to read,
# also in bench/results/bench.json. BENCH_ARGS=--quick skips the 1M-row runs; `python -m bench.report --from-json
# --docs` makes the table again from the last runs and copies it into docs/performance.md.
bench: install
	$(BIN)/python -m bench.report --docs $(BENCH_ARGS)

# py-spy on the web and both workers through one 1M-row upload: collapsed stacks and a summary in bench/results/.
profile: install
	$(BIN)/python -m bench.profile_job --rows 1000000 --workers 2

# MLflow and BentoML timed on the same model and files, each in its own venv under var/bench-peers/ (not .venv).
bench-peers: install
	$(BIN)/python -m bench.peers.run --python $(PYTHON) --json bench/results/peers.json

# Every CI run: compose config with the real binary, hadolint, the deploy checker, a host-process smoke.
deploy-check: install
	bash deploy/check.sh

# The real thing: dockerd, stand-in base images, both images built, the stack up, a spreadsheet scored, 3 workers.
compose-smoke: install
	bash deploy/compose_smoke.sh

clean:
	rm -rf var .pytest_cache
