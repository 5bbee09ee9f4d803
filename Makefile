# Two commands for a new user: `make run` (the daemon on rules.example.yaml) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install

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

test: lint
	$(BIN)/pytest -q -p no:cacheprovider
