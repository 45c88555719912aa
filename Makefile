# streamdrift: `make demo` and `make test` on a fresh machine (Python 3.11+,
# Java 17, Maven). See deploy/local-kafka.sh for the broker's settings.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

KAFKA_PORT ?= 9092
TEST_KAFKA_PORT ?= 19092
# The security tests' own broker (SASL_SSL, mTLS, SASL_PLAINTEXT) takes 5 ports from here.
TEST_SECURE_KAFKA_PORT ?= $$(($(TEST_KAFKA_PORT) + 4))
BENCH_KAFKA_PORT ?= 19094
PYTEST_ARGS ?=

export KAFKA_PORT

.DEFAULT_GOAL := help
.PHONY: help setup prerequisites kafka-up kafka-down kafka-status test lint demo bench clean

help:
	@echo "make setup        create $(VENV) with the locked dependencies and the package (editable)"
	@echo "make demo         local Kafka + simulated drifting producer + streamdrift run (metrics on :9108)"
	@echo "make test         ruff, mypy, then pytest against its own broker on port $(TEST_KAFKA_PORT)"
	@echo "                  (first checks Java, Maven, promtool, prometheus, amtool, openssl; installs"
	@echo "                  the Prometheus tools with apt-get as root, else names the command)"
	@echo "make lint         ruff + mypy"
	@echo "make kafka-up     start the local broker on KAFKA_PORT=$(KAFKA_PORT) (kafka-down stops it)"
	@echo "make bench        throughput and state size/restore (own broker on port $(BENCH_KAFKA_PORT)), detection-quality (bench/quality.py) benchmarks"
	@echo "make clean        remove var/ and caches (keeps $(VENV) and the Kafka jar cache)"

setup: $(STAMP)

# Re-run only when the lock file or the project metadata change, or when a
# package's __init__.py appears (setuptools' editable finder records a package
# without one as a namespace package and then never sees its __init__.py).
$(STAMP): requirements.lock pyproject.toml $(wildcard stream/__init__.py detectors/__init__.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps -e .
	touch $@

kafka-up:
	deploy/local-kafka.sh start

kafka-down:
	deploy/local-kafka.sh stop

kafka-status:
	deploy/local-kafka.sh status

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy detectors stream

# What make test needs outside .venv: checked (and where it can, installed) before anything.
prerequisites:
	deploy/test-prerequisites.sh

# Prerequisites and lint first (no broker needed), then pytest with a fresh broker of its own that
# is stopped afterwards whatever pytest's outcome; pytest's status is kept.
test: prerequisites lint
	KAFKA_PORT=$(TEST_KAFKA_PORT) KAFKA_CLEAN=1 \
	TEST_KAFKA_BOOTSTRAP=localhost:$(TEST_KAFKA_PORT) \
	TEST_SECURE_KAFKA_PORT=$(TEST_SECURE_KAFKA_PORT) \
	deploy/with-kafka.sh $(BIN)/pytest $(PYTEST_ARGS)

demo: setup
	deploy/demo.sh

bench: setup
	KAFKA_PORT=$(BENCH_KAFKA_PORT) KAFKA_CLEAN=1 \
	deploy/with-kafka.sh sh -c '$(BIN)/python bench/throughput.py && $(BIN)/python bench/state.py'
	$(BIN)/python bench/detect.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/quality_concept.py

# Stops any broker of ours still running from var/ before removing its files.
clean:
	@for d in var/kafka-*; do \
	  [ -f "$$d/kafka.pid" ] && KAFKA_PORT="$${d##*-}" KAFKA_STATE_DIR="$(CURDIR)/$$d" \
	    deploy/local-kafka.sh stop; \
	done; true
	rm -rf var .pytest_cache .ruff_cache .mypy_cache build *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
