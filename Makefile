# Two commands for a fresh machine: `make run` (sets up and starts opsbot) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: run test lint bench clean browser

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/opsbot run

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Best effort: Debian's chromium for the browser test of the sandbox page, when apt-get is
# usable (root); otherwise one line, and that test skips itself.
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test (apt-get install chromium)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null; } \
	    || echo "chromium could not be installed: the browser test will be skipped"; \
	else \
	  echo "$(CHROMIUM) is absent and apt-get is not usable here (not root): the browser test will be skipped"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check bot handlers executors tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/queue_bench.py

clean:
	rm -rf $(VENV) var
