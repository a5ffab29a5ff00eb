# hostnet: setup, run and test. Works from a fresh clone as root with only Python installed,
# with any Python >= 3.11, Debian 12's own included: make test PYTHON=/usr/bin/python3 VENV=.venv-debian
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the tool and its tests drive (binary:package).
DEB_TOOLS := nft:nftables iptables:iptables conntrack:conntrack ip:iproute2 sysctl:procps \
             modprobe:kmod tmux:tmux promtool:prometheus

.PHONY: help deps pyvenv venv run test test-unit test-kernel test-e2e check bench clean

help:
	@echo "make run    install everything and diagnose this host (hostnet doctor)"
	@echo "make test   install everything and run lint, type checks and all test tiers"
	@echo "make bench  run the benchmarks (see bench/RESULTS.md)"

# Install the Debian tools that are missing (needs root and apt-get).
deps:
	@missing=""; for pair in $(DEB_TOOLS); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root to install:$$missing" >&2; exit 2; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	fi
	@modprobe nf_conntrack 2>/dev/null || true

# $(PYTHON) must be able to make a venv with pip. Debian splits venv/ensurepip into
# python3-venv (python3.X-venv): install it when missing (needs root and apt-get).
pyvenv:
	@if ! $(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), sys.version' 2>/dev/null; then \
	  echo "$(PYTHON): hostnet needs Python >= 3.11" >&2; exit 2; fi
	@if ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then \
	  ver=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  echo "$(PYTHON) cannot make a venv (no venv/ensurepip): installing python$$ver-venv"; \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "install the venv module for $(PYTHON) (Debian: apt-get install python3-venv)" >&2; \
	    exit 2; fi; \
	  apt-get update -qq && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends python$$ver-venv >/dev/null 2>&1 || \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    python3-venv >/dev/null; }; \
	  $(PYTHON) -c 'import venv, ensurepip' || exit 2; \
	fi

$(BIN)/hostnet: pyproject.toml | pyvenv
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 2; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/hostnet

# Findings (exit 1) are the report doing its job, not a failure of make.
run: deps venv
	$(BIN)/hostnet doctor || [ $$? -eq 1 ]

check: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-kernel: deps venv
	$(BIN)/pytest -q tests/kernel

test-e2e: deps venv
	$(BIN)/pytest -q tests/e2e

test: deps venv check
	$(BIN)/pytest -q -p no:cacheprovider tests

bench: deps venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .venv-debian .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
