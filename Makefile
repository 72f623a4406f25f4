# Brazier: a self-hosted AWS Lambda.  `make help` lists the targets.
#
# `make run` installs only what serving needs: the distribution packages first
# (scripts/system-deps.sh run), then the venv with requirements.lock (exact versions of the
# runtime dependencies) and brazier itself (--no-deps), then builds the native helpers and serves.
# `make test`, `make lint`, `make bench` add the dev tools (scripts/system-deps.sh dev and
# requirements-dev.lock). `make lock` regenerates both lock files from pyproject.toml's ranges.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check
UV_COMPILE := $(BIN)/uv pip compile -q pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --no-emit-package brazier
DATA_DIR ?= ./.brazier
HOST ?= 127.0.0.1
PORT ?= 9000

.PHONY: help run test lint fmt bench check system-deps system-deps-run venv venv-run native \
	lock clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

system-deps-run: ## install the distribution packages serving needs (apt or dnf; root)
	@bash scripts/system-deps.sh run

system-deps: ## install the distribution packages serving, tests and benchmarks need (root)
	@bash scripts/system-deps.sh dev

# The venv is created only after python3-venv is installed (order-only: checked every time,
# quickly, without forcing a reinstall).
$(BIN)/python: | system-deps-run
	$(PYTHON) -m venv $(VENV)
	$(PIP) -U pip==25.3

$(RUN_STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(PIP) -r requirements.lock
	$(PIP) --no-deps -e .
	@touch $@

# The dev lock holds the run lock's versions (make lock compiles one within the other).
$(DEV_STAMP): requirements-dev.lock requirements.lock pyproject.toml | $(BIN)/python system-deps
	$(PIP) -r requirements-dev.lock
	$(PIP) --no-deps -e .
	@touch $@ $(RUN_STAMP)

venv-run: $(RUN_STAMP) ## create .venv with what serving needs only

venv: $(DEV_STAMP) ## create .venv with everything brazier needs, dev tools included

native: $(RUN_STAMP) | system-deps-run ## build the sandboxes' native helpers (skipped without gcc)
	@bash scripts/build-native.sh $(BIN)/python

run: $(RUN_STAMP) native ## start the server on $(HOST):$(PORT), data in $(DATA_DIR)
	$(BIN)/brazier server --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: $(DEV_STAMP) ## ruff, ruff format --check, mypy --strict, import-linter
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(DEV_STAMP) ## format and autofix
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: $(DEV_STAMP) native lint ## lint, then the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(DEV_STAMP) native ## run the benchmarks, JSON in bench/results/
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.table

check: test bench ## everything CI would run, plus the benchmarks

lock: $(DEV_STAMP) ## regenerate requirements*.lock from pyproject.toml (keeps pins that fit)
	$(UV_COMPILE) --extra dev -o requirements-dev.lock
	$(UV_COMPILE) -c requirements-dev.lock -o requirements.lock

clean: ## remove the venv and caches (keeps .brazier data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

.PHONY: test-v2
test-v2: $(DEV_STAMP) native ## tests/vm/ on a cgroup v2 kernel in QEMU (TCG), about 6 min
	bash scripts/vm-test.sh
