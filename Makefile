# OVN Hub: two commands do everything on a fresh Debian 12 machine (as root).
#   make run   install what is missing, start hubd with an OVN sandbox and the local Docker engine
#   make test  install what is missing, run lint, types, the layer contract and the whole test suite
#   make test-fast  tests/unit only: no server, no socket, no root; seconds
#   make demo  containers ping through OVN, by DNS name across networks, out via SNAT; a policy cuts one off
#              (two chassis, everything started and removed again)
# Python dependencies come from requirements.lock (pinned, with hashes); `make lock` refreshes it after an edit
# of pyproject.toml (`make lock LOCK_ARGS=--upgrade` moves every pin to the newest release that fits).
.PHONY: run test test-fast deps lint bench demo lock schemas fuzz faults

VENV := .venv
PY := $(VENV)/bin/python

deps:
	@sh scripts/install-deps.sh

# pip-tools lives in a venv of its own (.venv-lock), never in the project's .venv. The lock leaves out `ovs`:
# Debian's python3-openvswitch provides it with its C JSON extension, which PyPI's sdist builds without.
LOCK_TOOLS := .venv-lock
lock:
	@[ -x $(LOCK_TOOLS)/bin/pip-compile ] || { /usr/bin/python3 -m venv $(LOCK_TOOLS) && \
		$(LOCK_TOOLS)/bin/pip install -q --disable-pip-version-check pip-tools==7.6.2; }
	$(LOCK_TOOLS)/bin/pip-compile --quiet --extra test --build-deps-for editable --strip-extras \
		--generate-hashes --unsafe-package ovs --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock $(LOCK_ARGS) pyproject.toml
	@$(LOCK_TOOLS)/bin/python scripts/check-lock.py

# docs/schemas/*.json are generated from hub.mqtt.payload_schemas(); tests/integration/test_mqtt.py fails when they are stale.
schemas: deps
	$(PY) scripts/gen-schemas.py

run: deps
	@sh scripts/run.sh

demo: deps
	@$(PY) scripts/demo.py

lint: deps
	$(PY) scripts/check-lock.py
	$(VENV)/bin/ruff check core hub adapters testkit tests scripts $(wildcard bench)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The fuzz doors run in a process of their own (10,000 inputs per door, ~3 min): earlier tests' objects are not theirs to scan.
test: lint
	$(PY) -m pytest -q -ra --durations=15 tests --ignore=tests/unit/test_fuzz_doors.py
	$(PY) -m pytest -q -ra -p no:cacheprovider tests/unit/test_fuzz_doors.py

# The fuzz suite alone, longer: OVN_HUB_FUZZ_EXAMPLES inputs per door (`make test` runs 10000, test-fast 1000).
FUZZ_EXAMPLES ?= 100000
fuzz: deps
	OVN_HUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:logging tests/unit/test_fuzz_doors.py

# The fault suite alone, with three times the injections (seeded: OVN_HUB_FAULT_SEED); the JSON report goes to
# faults-report.json. `make test` runs it once at the normal count.
faults: deps
	OVN_HUB_FAULT_SCALE=3 OVN_HUB_FAULT_REPORT=faults-report.json $(PY) -m pytest -q -p no:cacheprovider tests/system/faults

# tests/unit alone (no Debian daemons, no lint): the loop while editing; `make test` runs it again with the rest.
test-fast: deps
	OVN_HUB_FUZZ_EXAMPLES=1000 $(PY) -m pytest -q -ra tests/unit

# Every bench's JSON goes to bench/out/<name>.json (and to the terminal); the summary table comes last.
BENCH_OUT := bench/out
bench: deps
	@mkdir -p $(BENCH_OUT)
	$(PY) -m bench bulk --n 10000 50000 100000 | tee $(BENCH_OUT)/bulk.json
	$(PY) -m bench resync --n 50000 100000 | tee $(BENCH_OUT)/resync.json
	$(PY) -m bench resync --n 50000 100000 --clustered | tee $(BENCH_OUT)/resync-clustered.json
	$(PY) -m bench churn | tee $(BENCH_OUT)/churn.json
	$(PY) -m bench normalize | tee $(BENCH_OUT)/normalize.json
	$(PY) -m bench k8s | tee $(BENCH_OUT)/k8s.json
	$(PY) -m bench mesos | tee $(BENCH_OUT)/mesos.json
	$(PY) -m bench cloudfoundry | tee $(BENCH_OUT)/cloudfoundry.json
	$(PY) -m bench fabric | tee $(BENCH_OUT)/fabric.json
	$(PY) -m bench mqtt | tee $(BENCH_OUT)/mqtt.json
	$(PY) -m bench dataplane | tee $(BENCH_OUT)/dataplane.json
	$(PY) -m bench cni | tee $(BENCH_OUT)/cni.json
	@$(PY) -m bench summary $(BENCH_OUT)/*.json
