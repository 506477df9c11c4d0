# The one task runner: people and CI (.ci/run) call the same targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

# Use the machine's Python, never a downloaded one; pip --user puts uv in ~/.local/bin.
export UV_PYTHON_DOWNLOADS := never
export PATH := $(HOME)/.local/bin:$(PATH)
UV_RUN := uv run --frozen

.PHONY: setup deps-test test dev lint fmt bench bench-smoke faults

# --compile-bytecode: the libraries' .pyc are written once here, so that a process that may not write them
# (PYTHONDONTWRITEBYTECODE, a read-only image) does not compile every module it imports at each start.
setup:
	@if ! command -v uv >/dev/null 2>&1; then \
		python3 -m pip install --quiet uv || python3 -m pip install --quiet --user --break-system-packages uv; \
	fi
	uv sync --frozen --compile-bytecode

# Servers the integration tests start themselves (spane.embedded); only their binaries are installed here. The
# console's browser tests drive Debian's chromium (Playwright never downloads a browser here).
deps-test:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then \
		missing="$$missing postgresql"; \
	fi; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "missing:$$missing; install it as root (apt-get install -y $$missing)" >&2; exit 1; \
		fi; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# Lint first (ruff check + format, mypy strict): a finding fails the test command, and so CI.
test: setup deps-test lint
	$(UV_RUN) pytest -q

# The API on SPANE_HOST:SPANE_PORT (default 127.0.0.1:8000), e.g. `SPANE_PORT=8123 make dev`.
dev: setup
	$(UV_RUN) spane dev

lint:
	$(UV_RUN) ruff check . && $(UV_RUN) ruff format --check libs services src tests bench && $(UV_RUN) mypy

fmt:
	$(UV_RUN) ruff format libs services src tests bench && $(UV_RUN) ruff check --fix .

# The benchmark (README "Benchmarks"): SPANE against Celery in one run, each on a fresh Redis and Postgres.
# BENCH_ARGS passes more options, e.g. BENCH_ARGS="--executions 500 --workloads diamond fanout".
bench: setup deps-test
	$(UV_RUN) python -m bench --scaling --json bench/results.json $(BENCH_ARGS)

# What CI keeps working (tests/e2e/test_bench_smoke.py runs it too): W=5 per workload, correctness only.
bench-smoke: setup deps-test
	$(UV_RUN) python -m bench --smoke

# The long fault suite (RELIABILITY.md): services killed under load for minutes, Redis killed, Postgres stopped 30 s.
# `make test` runs its short version. The figures go to faults-report.json.
faults: setup deps-test
	SPANE_FAULTS=long SPANE_FAULTS_REPORT=faults-report.json $(UV_RUN) pytest -q -s --timeout 0 -m faults tests/faults
