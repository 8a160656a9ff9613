# rollout-analyzer developer entry points.
#
#   make test    set everything up, then ruff, mypy, import-linter and pytest (what CI runs)
#   make demo    set everything up, then run the local end-to-end canary demo
#   make lint    ruff, mypy and import-linter only
#   make bench   run every benchmarks/*.py with the venv's python
#   make clean   remove caches and build artefacts (make distclean also removes .venv)
#
# Works on a fresh Debian 12 machine with only python3: the venv is created when missing, the
# Python dependencies are re-installed only when pyproject.toml changed, and the Debian packages
# the tests need (prometheus, haproxy) are installed only when their binaries are not on PATH.

PYTHON ?= python3
VENV   ?= .venv
STAMP  := $(VENV)/.installed.stamp

# Directories ruff checks; an empty directory is not kept by git, so only existing ones are passed.
LINT_DIRS := $(wildcard analyzer tests benchmarks)

# apt-get needs root: use sudo only when we are not root already.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help setup venv sysdeps test lint demo bench clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

setup: venv sysdeps

# --- Python environment -----------------------------------------------------------------------

venv: $(STAMP)

# Debian's own python3 ships without ensurepip (it lives in python3-venv); install it if needed.
$(VENV)/bin/python:
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo ">> $(PYTHON) has no ensurepip: installing python3-venv"; \
	  $(APT_GET) update && $(APT_GET) install -y python3-venv; \
	fi
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --disable-pip-version-check -e '.[test]'
	touch $@

# --- Debian packages: real Prometheus (+ promtool) and HAProxy for the tests -------------------

sysdeps:
	@set -e; missing=""; \
	if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then missing="prometheus"; fi; \
	if ! command -v haproxy >/dev/null; then missing="$$missing haproxy"; fi; \
	if [ -z "$$missing" ]; then echo ">> prometheus, promtool and haproxy are on PATH"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "error: missing$$missing and no apt-get here; install them yourself" >&2; exit 1; \
	fi; \
	echo ">> installing Debian packages:$$missing"; \
	$(APT_GET) update; \
	case "$$missing" in *prometheus*) $(APT_GET) install -y --no-install-recommends prometheus;; esac; \
	case "$$missing" in *haproxy*) $(APT_GET) install -y haproxy;; esac

# --- Checks -----------------------------------------------------------------------------------

lint: venv
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/mypy analyzer
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects no tests: that is a failure here, not a pass.
test: setup lint
	@$(VENV)/bin/pytest -q || { rc=$$?; \
	  [ $$rc -eq 5 ] && echo "error: pytest collected no tests" >&2; \
	  exit $$rc; }

# --- Running things ---------------------------------------------------------------------------

demo: setup
	$(VENV)/bin/analyzer demo

bench: setup
	@set -e; found=0; \
	for f in benchmarks/*.py; do \
	  [ -e "$$f" ] || continue; found=1; \
	  echo ">> $$f"; $(VENV)/bin/python "$$f"; \
	done; \
	[ $$found -eq 1 ] || echo ">> no benchmarks/*.py yet"

# --- Housekeeping -----------------------------------------------------------------------------

clean:
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache .import_linter_cache build dist *.egg-info

distclean: clean
	rm -rf $(VENV)
