# Two commands on a fresh machine: `make run` and `make test`.
# The virtual environment is rebuilt whenever the dependency files change: the stamp
# file's name carries a hash of them.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_FILES := pyproject.toml requirements/no-deps.txt
DEPS_HASH := $(shell cat $(DEPS_FILES) | sha256sum | cut -c1-16)
STAMP := $(VENV)/.deps-$(DEPS_HASH)

.PHONY: venv tools run test lint typecheck unit fast fuzz bench corpus clean

venv: $(STAMP)

$(STAMP): $(DEPS_FILES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,sim,train,embed]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/no-deps.txt
	@rm -f $(VENV)/.deps-*
	@touch $@
	@echo "virtual environment $(VENV) is up to date ($(DEPS_HASH))"

# promtool checks and tests deploy/prometheus; it comes with Debian's prometheus package,
# installed only when promtool is missing. The package's daemon is not started:
# policy-rc.d refuses the start during the install (a policy-rc.d already there is left
# as it is), and the service is disabled afterwards.
# docker-compose (Debian package docker-compose, Compose 1.29, no daemon) validates
# docker-compose.yml (tests/unit/deploy/test_compose.py); installed only when missing.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
POLICY_RC := /usr/sbin/policy-rc.d

# The Python tools (helm-python-sdk and kubernetes-validate, for deploy/k8s) are pinned in
# the dev extra: they come with the virtual environment, hence $(STAMP).
tools: $(STAMP)
	@command -v promtool >/dev/null 2>&1 || { \
		set -e; \
		if [ ! -e $(POLICY_RC) ]; then \
			trap '$(SUDO) rm -f $(POLICY_RC)' EXIT; \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $(POLICY_RC) >/dev/null; \
			$(SUDO) chmod 755 $(POLICY_RC); \
		fi; \
		echo "installing promtool (Debian package prometheus)"; \
		$(SUDO) apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		if command -v systemctl >/dev/null 2>&1; then \
			$(SUDO) systemctl disable --quiet prometheus 2>/dev/null || true; \
		elif command -v update-rc.d >/dev/null 2>&1; then \
			$(SUDO) update-rc.d prometheus disable >/dev/null 2>&1 || true; \
		fi; \
	}
	@command -v docker-compose >/dev/null 2>&1 || { \
		set -e; \
		echo "installing docker-compose (Debian package docker-compose)"; \
		$(SUDO) apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; \
	}
	@command -v chromium >/dev/null 2>&1 || { \
		set -e; \
		echo "installing chromium (Debian package chromium, for tests/service/gateway/test_ui.py)"; \
		$(SUDO) apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	}
	@promtool --version 2>&1 | head -n 1
	@chromium --version 2>/dev/null | head -n 1
	@echo "docker-compose $$(docker-compose version --short)"

run: $(STAMP)
	$(BIN)/ptychoagent run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) tools
	$(BIN)/pytest -q tests/unit

# The suite in one run: two halves at once (integration beside the rest) was tried and
# ran out of memory on 24 GiB (each pytest process reaches 7-8 GiB beside the engines).
# The slowest tests are printed, to keep the whole under 30 minutes on two cores.
test: lint typecheck tools
	$(BIN)/pytest -q --durations=25

fast: $(STAMP) tools
	$(BIN)/pytest -q -m 'not slow and not integration'

# The OpenAPI fuzzing of the suite, longer and with a new seed each run (FUZZ_SEED=N
# repeats one); prints the cases per app and status, and the seed.
FUZZ_EXAMPLES ?= 1000
FUZZ_SEED ?= $(shell python3 -c 'import random; print(random.randrange(1, 2**31))')
fuzz: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/service/test_openapi.py -k every_answer \
		--fuzz-examples $(FUZZ_EXAMPLES) --fuzz-seed $(FUZZ_SEED)

bench: $(STAMP)
	$(BIN)/python benchmarks/bootstrap.py
	$(BIN)/python benchmarks/sim_throughput.py
	$(BIN)/python benchmarks/engine.py

# The training corpus and the shifted test set (docs/corpus.md): hours on a 2-core CPU,
# resumable (rerun to go on; finished work units are kept and committed), one worker
# (SIM_WORKERS) so that other work can go on beside it. The shifted set comes first: it
# is smaller and it is the yardstick.
SIM_WORKERS ?= 1
corpus: $(STAMP)
	$(BIN)/ptychoagent sim --out data/shifted --variation shifted --n 200 --seed 2000 \
		--test-fraction 0.5 --recommendation-share 0.6 --workers $(SIM_WORKERS)
	$(BIN)/ptychoagent sim --out data/corpus --variation corpus --n 3000 --seed 1000 \
		--test-fraction 0.05 --recommendation-share 0.55 --workers $(SIM_WORKERS)

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
