# Two commands matter: `make demo` (install + run with demo data) and `make test` (the whole suite).
VENV ?= .venv
# Test processes: the suite is sized for a 2-core machine (pytest-xdist).
TEST_JOBS ?= 2
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: install demo serve test lint format services bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(BIN)/cape demo

serve: install
	$(BIN)/cape serve

services:
	bash scripts/test-services.sh

test: install services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(TEST_JOBS) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/ingest.py
