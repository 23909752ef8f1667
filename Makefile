# OVN Hub: two commands do everything on a fresh Debian 12 machine (as root).
#   make run   install what is missing, start hubd with an OVN sandbox and the local Docker engine
#   make test  install what is missing, run lint, types, the layer contract and the whole test suite
#   make demo  two containers ping through OVN, a policy cuts them off (everything started and removed again)
.PHONY: run test deps lint bench demo

VENV := .venv
PY := $(VENV)/bin/python

deps:
	@sh scripts/install-deps.sh

run: deps
	@sh scripts/run.sh

demo: deps
	@$(PY) scripts/demo.py

lint: deps
	$(VENV)/bin/ruff check core hub adapters testkit tests scripts $(wildcard bench)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q -ra --durations=15 tests

bench: deps
	$(PY) -m bench bulk --n 10000 50000
	$(PY) -m bench resync --n 50000
	$(PY) -m bench k8s
	$(PY) -m bench mqtt
	$(PY) -m bench dataplane
