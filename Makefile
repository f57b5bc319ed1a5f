# Every target installs what it needs: a machine with only python3 + pip is enough.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=
# Trust the system certificate store (machines behind a TLS-inspecting proxy need it).
export UV_SYSTEM_CERTS ?= 1

.PHONY: uv install check test test-cov test-slow demo dev bench reliability reliability-quick \
	rehearsal rehearsal-test clean

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet uv || \
		python3 -m pip install --quiet --user --break-system-packages uv

# Bytecode is compiled at install, as the Dockerfile does (UV_COMPILE_BYTECODE): with
# PYTHONDONTWRITEBYTECODE set, every daemon, code server and run worker would otherwise
# compile every module it imports from source at each start (~2x the import time).
install: uv
	@$(UV) sync --frozen --quiet --compile-bytecode
	@$(UV) run python -m compileall -q event_assets >/dev/null

check: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy event_assets pubsub_emulator devtools event_assets_tests benchmarks scripts reliability
	$(UV) run dagster definitions validate -w workspace.yaml --log-level warning
	UV="$(UV)" bash infra/check.sh

test: install
	$(UV) run pytest $(PYTEST_ARGS)

test-cov: install
	$(UV) run pytest --cov=event_assets --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

test-slow: install
	$(UV) run pytest -m slow $(PYTEST_ARGS)

demo: install
	$(UV) run python -m devtools.run_demo

dev: install
	$(UV) run python -m devtools.run_dev

reliability: install
	$(UV) run python -m reliability

reliability-quick: install
	$(UV) run python -m reliability --quick

# The deployed topology on this machine (image env, Postgres, gs:// and compute logs on the
# GCS fake, every run through the Cloud Run fake): until Ctrl-C, or driven end to end.
rehearsal: install
	UV="$(UV)" $(UV) run python scripts/rehearsal.py

rehearsal-test: install
	UV="$(UV)" $(UV) run python scripts/rehearsal.py --test

bench: install
	$(UV) run python -m benchmarks

clean:
	rm -rf .data .dagster_home .pytest_cache .mypy_cache .ruff_cache
