# Everything a fresh machine needs: `make run` serves, `make test` checks.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run worker cluster test lint typecheck pytest system-packages api-script bench clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps make repeated runs fast and reinstall when the dependency lists change.
$(VENV)/.runtime: $(BIN)/python pyproject.toml requirements.txt
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

run: $(VENV)/.runtime
	$(BIN)/python run_server.py --host $(HOST) --port $(PORT)

# A block worker of a cluster: needs DATABASE_URL (PostgreSQL) and TASK_ENGINE=procrastinate
# in the environment, as the servers it works for have them.
worker: $(VENV)/.runtime
	TASK_ENGINE=procrastinate $(BIN)/python -m workflow_engine.worker

# A cluster on this machine from Debian's binaries: PostgreSQL, the sandbox, 2 servers on
# ports 5000-5001 and 2 workers (OBJECT_STORE=1: files in an S3-compatible store).
cluster: $(VENV)/.dev system-packages
	$(BIN)/python scripts/cluster.py --port $(PORT) $(if $(OBJECT_STORE),--object-store)

test: lint typecheck pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

# Debian packages the suite starts servers from (PostgreSQL), installed when missing.
system-packages:
	./scripts/system-packages

# The suite includes test_api.sh, run against a real server started on a free port, and
# runs every database test on SQLite and on a PostgreSQL server it starts itself.
pytest: $(VENV)/.dev system-packages
	$(BIN)/pytest

# The browser tests again, keeping their pictures of each page in docs/screenshots.
screenshots: $(VENV)/.dev system-packages
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest tests/ui -q

api-script: $(VENV)/.runtime
	./test_api.sh http://$(HOST):$(PORT)

bench: $(VENV)/.dev system-packages
	./scripts/system-packages wrk
	$(BIN)/python bench/fires.py
	$(BIN)/python bench/cluster_fires.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/compute.py
	$(BIN)/python bench/http_request.py
	$(BIN)/python bench/cluster_enrichment.py
	$(BIN)/python bench/bulk_email.py
	$(BIN)/python bench/ui.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
