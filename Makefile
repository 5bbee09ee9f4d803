# Two commands for a new user: `make run` (the daemon on rules.example.yaml) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install services fuzz

$(BIN)/sentinel: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/sentinel

run: $(BIN)/sentinel
	$(BIN)/sentinel run -c rules.example.yaml

lint: $(BIN)/sentinel
	$(BIN)/ruff check sentinel tests bench
	$(BIN)/ruff format --check sentinel tests bench
	$(BIN)/mypy

services:
	scripts/test-services

test: lint services
	$(BIN)/pytest -q -p no:cacheprovider

# The property-based harnesses (marked `fuzz`) with a long budget; `make test` runs them short.
fuzz: $(BIN)/sentinel services
	SENTINEL_HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -p no:cacheprovider -m fuzz
