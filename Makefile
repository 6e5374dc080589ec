# Two commands: `make run` (Envoy + authz + demo upstream) and `make test`.
# `make bench` compares authz with the alternatives; `make bench-decide` times decide().
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit proto bench bench-decide clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m dev.run

test: lint typecheck unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q

proto: $(STAMP)
	$(PY) proto/generate.py

bench: $(STAMP)
	$(PY) -m bench.compare $(BENCH_ARGS)

bench-decide: $(STAMP)
	$(PY) -m bench.decide

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
