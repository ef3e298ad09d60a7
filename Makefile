# Two commands on a fresh machine: `make run` and `make test`.
# The virtual environment is rebuilt whenever the dependency files change: the stamp
# file's name carries a hash of them.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_FILES := pyproject.toml requirements/no-deps.txt
DEPS_HASH := $(shell cat $(DEPS_FILES) | sha256sum | cut -c1-16)
STAMP := $(VENV)/.deps-$(DEPS_HASH)
RUN_DIR ?= runs/quickstart

.PHONY: venv run test lint typecheck unit fast bench clean

venv: $(STAMP)

$(STAMP): $(DEPS_FILES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,sim,train,embed]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/no-deps.txt
	@rm -f $(VENV)/.deps-*
	@touch $@
	@echo "virtual environment $(VENV) is up to date ($(DEPS_HASH))"

run: $(STAMP)
	$(BIN)/ptychoagent quickstart --out $(RUN_DIR)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: lint typecheck
	$(BIN)/pytest -q

fast: $(STAMP)
	$(BIN)/pytest -q -m 'not slow and not integration'

bench: $(STAMP)
	$(BIN)/python benchmarks/bootstrap.py
	$(BIN)/python benchmarks/sim_throughput.py
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
