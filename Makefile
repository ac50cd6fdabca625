# Every target creates and uses .venv itself: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Services the tests start themselves (redis-server, prometheus) come from Debian packages.
APT_INSTALL := sh -c 'if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$0" >/dev/null; else echo "please install $$0 (apt-get install $$0)"; exit 1; fi'
PYTHON313 ?= $(firstword $(wildcard /usr/local/bin/python3.13 /usr/bin/python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13)
MONGO_VENV := .venv-mongo
MONGO_STAMP := $(MONGO_VENV)/.installed

TEST_STAMP := $(VENV)/.test-services

.PHONY: setup setup-test run test lint typecheck pytest bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# What the tests start themselves: redis-server and prometheus (Debian packages) and the
# mongoeco wire server (its own Python 3.13 venv).
setup-test: $(STAMP) $(TEST_STAMP)

$(TEST_STAMP):
	command -v redis-server >/dev/null 2>&1 || $(APT_INSTALL) redis-server
	command -v prometheus >/dev/null 2>&1 || $(APT_INSTALL) prometheus
	$(MAKE) --no-print-directory $(MONGO_STAMP)
	touch $(TEST_STAMP)

# The MongoDB wire server the tests use (mongoeco needs Python >= 3.13; see tests/mongo).
$(MONGO_STAMP):
	test -x $(MONGO_VENV)/bin/python || $(PYTHON313) -m venv $(MONGO_VENV)
	$(MONGO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MONGO_VENV)/bin/python -m pip install --quiet 'mongoeco>=4.11' 'pymongo>=4.20'
	touch $(MONGO_STAMP)

# The main job on the embedded default: a simulated cluster scenario, then a real local 3-node
# job cluster (Raft election and Raft store) running a demo batch of jobs to a final table.
run: setup
	$(BIN)/troupe sim run scenarios/jobs-leader-crash.toml --seed 1
	$(BIN)/troupe cluster up --nodes 3 --store raft --demo-jobs 60

# Lint, type-check, then the whole test suite.
test: setup-test lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check actors sim transport tests

typecheck: setup
	$(BIN)/mypy --strict actors sim transport

# Two workers: the multi-process tests spend much of their time waiting for their nodes.
pytest: setup-test
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q -n 2 --dist worksteal

bench: setup
	$(BIN)/troupe bench sim

clean:
	rm -rf $(VENV) $(MONGO_VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
