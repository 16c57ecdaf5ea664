# Two commands for a fresh machine (Python 3.11+ with venv and pip):
#   make serve   serve the API on http://127.0.0.1:8000 (SQLite under ./data/)
#   make test    run the whole test suite (a test that needs PostgreSQL, Redis, Chromium,
#                wrk or the bench extra skips when it is absent; .ci/run installs them all)
#   make bench   run the benchmarks (python -m benchmarks $(BENCH_ARGS); needs wrk)
# Each creates .venv and installs what it needs the first time (and again when
# pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/python main.py serve

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
