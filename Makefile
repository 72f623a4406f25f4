# Brazier: a self-hosted AWS Lambda.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= ./.brazier
HOST ?= 127.0.0.1
PORT ?= 9000

NATIVE := src/brazier/_sandbox_init/_brazier_trace_env.node

.PHONY: help run test lint fmt bench check system-deps native clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip==25.3
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

system-deps: ## install the Debian packages the sandboxes and runtime clients need (root)
	@bash scripts/system-deps.sh

venv: $(STAMP) ## create .venv with everything brazier needs

native: system-deps ## build the node runtime's native helper (skipped without gcc or node headers)
	@bash scripts/build-native.sh

run: $(STAMP) system-deps native ## start the server on $(HOST):$(PORT), data in $(DATA_DIR)
	$(BIN)/brazier server --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: $(STAMP) ## ruff, ruff format --check, mypy --strict, import-linter
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: $(STAMP) system-deps native lint ## lint, then the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) system-deps native ## run the benchmarks, JSON in bench/results/
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.table

check: test bench ## everything CI would run, plus the benchmarks

clean: ## remove the venv and caches (keeps .brazier data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

.PHONY: test-v2
test-v2: $(STAMP) system-deps native ## tests/vm/ on a cgroup v2 kernel in QEMU (TCG), < 6 min
	bash scripts/vm-test.sh
