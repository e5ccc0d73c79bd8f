# Two commands for a fresh machine: `make run` (sets up and starts opsbot) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/opsbot run

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot handlers executors tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/queue_bench.py

clean:
	rm -rf $(VENV) var
