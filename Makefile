# Berth: `make run` serves a local registry, `make test` runs every test.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PORT  ?= 5000
HOST  ?= 127.0.0.1

.PHONY: run test lint unit e2e tools install bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Debian tools the end-to-end tests drive (skopeo), installed when absent.
tools:
	@bash scripts/install-tools

run: install
	$(PY) -m berth.local --host $(HOST) --port $(PORT)

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

test: install tools lint
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/out
