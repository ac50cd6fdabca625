# Every target creates and uses .venv itself: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck pytest bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	command -v redis-server >/dev/null 2>&1 || echo "note: redis-server not found (later features need it: apt-get install redis-server)"
	touch $(STAMP)

# The main job on the embedded default: a simulated cluster scenario, then a real local 3-node
# job cluster (Raft election and Raft store) running a demo batch of jobs to a final table.
run: setup
	$(BIN)/troupe sim run scenarios/jobs-leader-crash.toml --seed 1
	$(BIN)/troupe cluster up --nodes 3 --store raft --demo-jobs 60

# Lint, type-check, then the whole test suite.
test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check actors sim transport tests

typecheck: setup
	$(BIN)/mypy --strict actors sim transport

pytest: setup
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q

bench: setup
	$(BIN)/troupe bench sim

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
