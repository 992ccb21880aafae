.DEFAULT_GOAL := help
SHELL := /bin/sh

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --disable-pip-version-check --quiet

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $$(scripts/find-python) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -e '.[cli,local,infra,dev]'
	@touch $(STAMP)

venv: $(STAMP) compiled-domain ## create .venv with the service, local engines, infra and test tools

compiled-domain: $(STAMP) ## compile the domain with mypyc for bulk imports (no-op when current)
	$(BIN)/python -m data_pipeline.devtools.compile_domain

system-deps: ## install redis-server from Debian if it is missing
	@scripts/ensure-system-deps

test: venv system-deps ## run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv system-deps ## run the local stack and push a realistic Salla event stream through it
	$(BIN)/salla-pipeline demo

dev: venv ## run the local stack until Ctrl-C
	$(BIN)/salla-pipeline dev

lint: venv ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv system-deps ## run the benchmark harnesses and print their figures
	$(BIN)/python -m bench

bundle: venv ## build the Lambda zip (production dependencies only) into dist/
	$(BIN)/python -m infra.bundle --out dist/lambda.zip

clean: ## remove the virtualenv, local data and build output
	rm -rf $(VENV) .data dist .pytest_cache .mypy_cache .ruff_cache services/data_pipeline/domain/_mypyc

.PHONY: help venv compiled-domain system-deps test demo dev lint bench bundle clean
