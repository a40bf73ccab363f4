# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run stop reset test lint format bench migrate clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is needed (set PYTHON=python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)  ## serve on http://$(HOST):$(PORT) (embedded PostgreSQL unless DATABASE_URL is set)
	$(BIN)/jambo serve --host $(HOST) --port $(PORT) --print-token

stop:  ## stop the embedded PostgreSQL that `make run` leaves running
	@if [ -x $(BIN)/jambo ]; then $(BIN)/jambo db stop; fi

reset: $(STAMP)  ## start over empty: stops the service and the embedded PostgreSQL, deletes their data
	$(BIN)/jambo reset --yes

test: $(STAMP)  ## the whole suite on a real PostgreSQL (TEST_DATABASE_URL, else embedded)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests migrations bench
	$(BIN)/mypy app
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff check --fix app tests migrations bench
	$(BIN)/ruff format app tests migrations bench

migrate: $(STAMP)
	$(BIN)/jambo migrate

bench: $(STAMP)  ## benchmark against the floor app; QUICK=1 for a short run
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,)

clean: stop  ## stop the embedded PostgreSQL, remove the venv and caches (data in .data/ stays)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
