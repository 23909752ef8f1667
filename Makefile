# OVN Hub: two commands do everything on a fresh Debian 12 machine (as root).
#   make run   install what is missing, start hubd with an OVN sandbox and the local Docker engine
#   make test  install what is missing, run lint, types, the layer contract and the whole test suite
.PHONY: run test deps lint bench

VENV := .venv
PY := $(VENV)/bin/python

deps:
	@sh scripts/install-deps.sh

run: deps
	@sh scripts/run.sh

lint: deps
	$(VENV)/bin/ruff check core hub adapters tests $(wildcard bench)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q -ra --durations=15 tests

bench: deps
	$(PY) -m bench bulk --n 10000 50000
	$(PY) -m bench resync --n 50000
	$(PY) -m bench k8s
	$(PY) -m bench mqtt
