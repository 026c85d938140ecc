# Quick start (see README): `make demo` installs only what the demo needs (python3-venv, the package)
# and analyzes a bundled capture; `make test` installs the test tools too and runs the whole test suite.
SHELL := /bin/bash
VENV := .venv
DEMO_CAPTURE ?= sample_pcaps/admin_drop.pcap

.PHONY: setup setup-demo demo test lint lab bench golden clean

setup:
	@scripts/setup.sh test
	@scripts/build_native.sh

setup-demo:
	@scripts/setup.sh demo
	@scripts/build_native.sh

demo: setup-demo
	$(VENV)/bin/iscsi-analyzer analyze $(DEMO_CAPTURE)

test: setup
	$(VENV)/bin/python -m pytest -q tests

# ruff (pyflakes, pycodestyle, isort, bugbear) over the whole tree; mypy --strict over the core and the pipeline.
lint: setup
	$(VENV)/bin/ruff check analyzer tests bench scripts fuzz wireshark setup.py
	$(VENV)/bin/mypy

lab: setup
	$(VENV)/bin/iscsi-analyzer lab run --all --out sample_pcaps

golden: setup
	$(VENV)/bin/python scripts/golden.py

bench: setup
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info reports/*/
