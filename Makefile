# Set-up and the two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck system-deps venv clean

venv: $(STAMP)

# torch first (pinned, from local wheels where present), then the pinned rest.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Real Prometheus and Pushgateway for the metrics tests, headless Chromium for the report
# check, g++ for torch.compile on CPU, and the PostgreSQL server the Iceberg catalog tests
# start themselves (Debian packages; the tests run initdb/pg_ctl, no system service).
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v prometheus-pushgateway >/dev/null \
	   || ! command -v promtool >/dev/null || ! command -v chromium >/dev/null \
	   || ! command -v g++ >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus prometheus-pushgateway chromium g++ postgresql \
	    >/dev/null; \
	fi

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/vip2clip demo

test: $(STAMP) system-deps
	HF_HUB_OFFLINE=1 $(BIN)/ruff check vip2clip jobs tests benchmarks
	HF_HUB_OFFLINE=1 $(BIN)/ruff format --check vip2clip jobs tests benchmarks
	HF_HUB_OFFLINE=1 $(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint:
	$(BIN)/ruff check vip2clip jobs tests benchmarks
	$(BIN)/ruff format --check vip2clip jobs tests benchmarks

typecheck:
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
