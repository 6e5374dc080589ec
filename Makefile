# Two commands: `make run` (Envoy + authz + demo upstream) and `make test`.
# `make bench` compares authz with the alternatives; `make bench-decide` times decide().
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit promtool proto bench bench-decide deploy-bundle clean

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

unit: $(STAMP) promtool
	$(VENV)/bin/pytest -q

# The alert rules, the dashboard's queries and /metrics are checked with promtool, from
# Debian's `prometheus` package (no daemon is started). Installed when missing and root;
# otherwise the tests that need it fail and say so.
promtool:
	@command -v promtool >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		  apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

proto: $(STAMP)
	$(PY) proto/generate.py

bench: $(STAMP)
	$(PY) -m bench.compare $(BENCH_ARGS)

bench-decide: $(STAMP)
	$(PY) -m bench.decide
	$(PY) -m bench.tokens

# The example bundle as the ConfigMap kustomization of deploy/ (docs/kubernetes.md).
deploy-bundle: $(STAMP)
	$(PY) -m dev.deploy_bundle policies deploy/base/policies

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
