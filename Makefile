# minimax-operator: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
CRD := crds/minimax.chatos.io_minimaxdeployments.yaml

.PHONY: run test venv tools cluster-up cluster-down crd lint unit e2e render clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

tools: ## build or reuse the pinned control-plane binaries (cached outside the repo)
	hack/tools.sh >/dev/null

cluster-up: venv tools ## start the local cluster (real control plane, kwok GPU nodes)
	PYTHON=$(abspath $(PY)) hack/cluster.sh up

cluster-down:
	hack/cluster.sh down

run: venv tools ## the demo: local cluster, CRD, operator, an M2.5 resource reaching Ready in ChatOS
	PYTHON=$(abspath $(PY)) hack/demo.sh

crd: venv ## regenerate the CRD from the pydantic models
	$(PY) -m minimax_operator crd > $(CRD)

lint: venv
	$(PY) -m ruff check operator tests hack bench
	$(PY) -m ruff format --check operator tests hack bench
	$(PY) -m mypy

unit: venv
	$(PY) -m pytest -m 'not e2e' -q

test: venv tools lint ## lint, types, unit and end-to-end tests
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
