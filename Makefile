# Soundmates — the two commands a newcomer needs:
#   make run    set up, then run the whole system on the embedded defaults
#   make test   set up, then run the test suite (what .ci/run calls)
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where torch==2.13.0's CPU build comes from (the Dockerfile's ARG of the same name). Empty: the
# machine's pip configuration (here it serves the CPU wheel from disk); elsewhere e.g.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH_INDEX ?=

.PHONY: setup run run-cluster cluster-services stop test test-cluster test-fast lint bench clean-state browser

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	@# UMAP's numba kernels compiled once here (their cache lives in the virtualenv), not in the first map.
	$(BIN)/python -c "from soundmates.index.layout import warm_jit; print(f'numba kernels of the taste map compiled in {warm_jit():.0f} s')"
	@# The shipped catalogue's artist and genre names encoded once (~80 s), not in every fresh data dir's first run.
	$(BIN)/python -m soundmates.features.catalogue_seed
	touch $(STAMP)

# Headless Chromium for the browser tests (Debian packages; nothing downloads a browser).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || bash scripts/install_chromium.sh

run: setup
	bash scripts/run.sh

# PostgreSQL and Redis for the cluster layout (Debian packages, like the browser).
cluster-services:
	@bash scripts/install_cluster_services.sh

# The same system on the cluster layout (docker-compose.yaml's): PostgreSQL, Redis, Airflow on the
# CeleryExecutor with two Celery workers, all processes on loopback; `make stop` stops it too.
run-cluster: setup cluster-services
	VENV=$(VENV) bash scripts/run_cluster.sh

stop:
	bash scripts/stop.sh

# ruff (lint + format) and mypy (its files are set in pyproject.toml): zero findings.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup browser
	$(BIN)/python -m pytest -q

# The cluster layout broken on purpose (scripts/test_cluster.py): a worker killed mid-ingest, the
# scheduler restarted mid-run, a user added during it; ends with one `cluster: {json}` line.
test-cluster: setup cluster-services
	VENV=$(VENV) timeout -k 60 720 $(BIN)/python scripts/test_cluster.py

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: setup
	$(BIN)/python -m bench.run_all

clean-state:
	rm -rf var
