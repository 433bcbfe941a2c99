# Soundmates — the two commands a newcomer needs:
#   make run    set up, then run the whole system on the embedded defaults
#   make test   set up, then run the test suite (what .ci/run calls)
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run stop test test-fast bench clean-state browser

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $(STAMP)

# Headless Chromium for the browser tests (Debian packages; nothing downloads a browser).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || bash scripts/install_chromium.sh

run: setup
	bash scripts/run.sh

stop:
	bash scripts/stop.sh

test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: setup
	$(BIN)/python -m bench.run_all

clean-state:
	rm -rf var
